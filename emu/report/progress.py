"""Progress of long verbs: a rich bar on a terminal, nothing when piped or asked for JSON.

    with work_progress("allreduce", total=6, unit="sizes", quiet=as_json) as step:
        step.describe("allreduce (ring) fp32 sum")
        ...; step.advance(); step.echo("a result line")      # lines print above the bar

Results still go to stdout as lines (`echo`), so a piped run reads exactly as before.
"""
import sys
from contextlib import contextmanager

import click


class Steps:
    def __init__(self, bar=None, task=None):
        self.bar, self.task = bar, task

    def describe(self, text: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=text)

    def advance(self, by: float = 1) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, by)

    def set(self, done: float, total: float | None = None) -> None:
        """For callers that count for themselves (progress(done, total) callbacks)."""
        if self.bar is not None:
            self.bar.update(self.task, completed=done, **({"total": total} if total is not None else {}))

    def row(self, line, quiet: bool = False):
        """An on_row callback: each result advances the bar and (unless quiet) prints as line(row)."""
        def done(row) -> None:
            self.advance()
            if not quiet:
                self.echo(line(row))
        return done

    def echo(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            click.echo(text)


def shown(quiet: bool = False) -> bool:
    """A bar only for a person watching: stdout is a terminal and no machine-readable output was asked."""
    return not quiet and sys.stdout.isatty()


@contextmanager
def work_progress(title: str, total: float | None, unit: str = "", quiet: bool = False):
    if not shown(quiet):
        yield Steps()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                  TimeElapsedColumn(), transient=True) as bar:
        yield Steps(bar, bar.add_task(title, total=total))
