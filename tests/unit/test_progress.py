"""Progress shows on a terminal only; results print as lines either way."""
import io
import sys

from emu.report.progress import work_progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_piped_or_json_prints_only_the_results(monkeypatch, capsys):
    for quiet in (False, True):
        with work_progress("work", 2, "steps", quiet=quiet) as step:
            assert step.bar is None
            step.describe("first")
            step.advance()
            step.echo("row 1")
            step.set(2, 2)
    assert capsys.readouterr().out == "row 1\nrow 1\n"


def test_a_terminal_gets_a_bar_and_the_lines_above_it(monkeypatch):
    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    with work_progress("work", 3, "steps") as step:
        assert step.bar is not None
        step.advance()
        step.set(2)
        assert step.bar.tasks[0].completed == 2 and step.bar.tasks[0].total == 3
        step.echo("row 1")
    assert "row 1" in screen.getvalue()
    with work_progress("work", 1, quiet=True) as step:
        assert step.bar is None          # --json
