"""A compute node: GPUs (emulated by the agents) behind one NIC, or one per GPU. `ports_per_nic`
pairs its ports, in order, into NICs (2: each NIC dual-homed to two ToRs, as dual-ToR fabrics do).
`hardware` names its hardware profile (cluster/profiles/; default ff2-a100-pcie)."""
from cluster import hardware
from emu.kinds.base import CONTAINER_ATTRS, PLACE_ATTRS, Kind, positive_int, register


def profile_name(value) -> str:
    """A hardware profile's name (cluster/profiles/), checked by loading it."""
    if not isinstance(value, str):
        raise ValueError(f"must be a hardware profile's name, got {value!r}")
    hardware.load(value)
    return value


COMPUTE = register(Kind("compute", attrs={"gpus": (positive_int, 8), "ports_per_nic": (positive_int, None),
                                          "hardware": (profile_name, None), **CONTAINER_ATTRS, **PLACE_ATTRS}))
