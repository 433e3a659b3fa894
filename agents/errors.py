"""How an agent fails: one line on stderr naming what went wrong, exit status 1."""
import os
import sys


def one_line_errors(run, who: str) -> int:
    """Call run(); a network, timeout or storage failure becomes 'who: reason' on stderr and exit 1."""
    try:
        run()
    except OSError as e:        # socket errors, timeouts, lost connections; StorageError is an IOError
        print(f"{who}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        # the line stays the last: what teardown may still say (an event loop's pending tasks
        # reported at exit) is not why the agent failed, and would hide the reason
        sys.stderr = open(os.devnull, "w")
        return 1
    return 0
