"""The one check for privileges: building and changing labs needs CAP_NET_ADMIN (root)."""
import os

from emu.errors import EmuError


def require_root(action: str = "build labs") -> None:
    if os.geteuid() != 0:
        raise EmuError(f"root (CAP_NET_ADMIN) is needed to {action}: run as root or with sudo")
