"""How an agent fails: one line on stderr naming what went wrong, exit status 1."""
import sys


def one_line_errors(run, who: str) -> int:
    """Call run(); a network, timeout or storage failure becomes 'who: reason' on stderr and exit 1."""
    try:
        run()
    except OSError as e:        # socket errors, timeouts, lost connections; StorageError is an IOError
        print(f"{who}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1
    return 0
