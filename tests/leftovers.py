"""What a lab leaves behind, as the kernel and the state directory tell it (tests of teardown)."""
from emu.daemon import client as daemon
from emu.fabric import apply, netns
from emu.lab import state_path
from emu.labfiles import STATE_DIR


def leftovers(lab):
    """Everything of `lab` the kernel or the state dir still holds."""
    spaces = [p.name for p in netns.NETNS_DIR.glob(f"emu-{lab}-*")] if netns.NETNS_DIR.is_dir() else []
    return {"namespaces": spaces, "marked": apply.owned_namespaces().get(lab, []),
            "state": state_path(lab).exists(), "daemon": daemon.daemon_pid(lab),
            "files": sorted(p.name for p in STATE_DIR.glob(f"{lab}.*"))}


NOTHING = {"namespaces": [], "marked": [], "state": False, "daemon": None, "files": []}
