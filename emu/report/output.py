"""Files a verb writes (plots, drawings): a bad name is refused in one line before any work."""
import os

from emu.errors import EmuError

PICTURES = ("png", "svg", "pdf")


def check_output(out: str, formats: tuple[str, ...] = PICTURES) -> str:
    """The format `out`'s suffix names; refused if unknown or its directory is missing."""
    suffix = out.rsplit(".", 1)[-1].lower() if "." in os.path.basename(out) else ""
    if suffix not in formats:
        raise EmuError(f"{out}: unknown format {suffix!r} (one of {', '.join(formats)})")
    if not os.path.isdir(os.path.dirname(out) or "."):
        raise EmuError(f"{out}: directory {os.path.dirname(out)} does not exist")
    return suffix
