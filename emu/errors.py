"""Errors a user sees as one line (the CLI prints str(error) and exits non-zero)."""


class EmuError(Exception):
    """A failure with a one-line reason meant for the user."""


MAX_PART = 160     # characters of a key or a reason shown; input values can be megabytes long


def shorten(text: str, limit: int = MAX_PART) -> str:
    """One line of at most `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TopologyError(EmuError):
    """Bad topology input: names the file, the key and the reason, on one readable line."""

    def __init__(self, source: str, key: str, reason: str):
        self.source, self.key, self.reason = source, shorten(key, 80), shorten(reason)
        super().__init__(f"{source}: {self.key}: {self.reason}")


class FabricError(EmuError):
    """The kernel refused a change while building or tearing down a lab."""
