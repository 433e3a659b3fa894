"""The fabric backends whose behaviour the shared integration tests check alike (emu.backends):
the kernel's routers and OpenFlow's Open vSwitch bridges under the lab's os-ken controller."""
import pytest

BACKENDS = ("kernel", "openflow")
both_backends = pytest.mark.parametrize("backend", BACKENDS)
