"""Errors a user sees as one line (the CLI prints str(error) and exits non-zero)."""


class EmuError(Exception):
    """A failure with a one-line reason meant for the user."""


class TopologyError(EmuError):
    """Bad topology input: names the file, the key and the reason."""

    def __init__(self, source: str, key: str, reason: str):
        self.source, self.key, self.reason = source, key, reason
        super().__init__(f"{source}: {key}: {reason}")


class FabricError(EmuError):
    """The kernel refused a change while building or tearing down a lab."""
