"""A benchmark's results in one table style for every script in scripts/: each row printed as it
is measured (long runs show progress), then with --json every table's rows as JSON, and with
--markdown FILE the tables as markdown, headed by the command that measured them, the date and
this machine's cores: docs/results/ is written by the scripts, never by hand.

    bench = Bench(args)                       # args from an argparse parser given add_options()
    table = bench.table("Bring-up", [Column("hosts", "hosts"), Column("up_s", "lab up", "{:.3f} s")])
    table.add(hosts=64, up_s=0.46)
    bench.close()
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fmt: str = "{}"                 # how a value shows, e.g. "{:.1%}"

    def show(self, row: dict) -> str:
        value = row.get(self.key)
        return "-" if value is None else self.fmt.format(value)


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print every table's rows as JSON, nothing else")
    parser.add_argument("--markdown", metavar="FILE", help="also write the tables as markdown (docs/results/)")


def add_flow_options(parser: argparse.ArgumentParser, runs: int = 3, seconds: float = 3.0) -> None:
    """--runs and --seconds of scripts that time TCP flows, and the table options."""
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--seconds", type=float, default=seconds)
    add_options(parser)


class Table:
    def __init__(self, bench: "Bench", title: str, columns: list[Column]):
        self.bench, self.title, self.columns = bench, title, columns
        self.rows: list[dict] = []
        self.notes: list[str] = []
        self.widths = [max(len(c.header), 8) for c in columns]

    def add(self, **row) -> None:
        if not self.rows:
            self.bench.say(f"\n# {self.title}")
            self.bench.say("  ".join(c.header.rjust(w) for c, w in zip(self.columns, self.widths)))
        self.rows.append(row)
        self.bench.say("  ".join(c.show(row).rjust(w) for c, w in zip(self.columns, self.widths)))

    def note(self, text: str) -> None:
        """A line under the table (what a column means, what the measurement assumes)."""
        self.notes.append(text)
        self.bench.say(f"  {text}")

    def markdown(self) -> list[str]:
        lines = [f"### {self.title}", "", "| " + " | ".join(c.header for c in self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(c.show(r) for c in self.columns) + " |" for r in self.rows]
        return lines + ([""] + self.notes if self.notes else []) + [""]


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.json, self.markdown_path = args.json, args.markdown
        self.tables: list[Table] = []
        self.command = "python " + shlex.join(sys.argv)
        if self.markdown_path and not os.path.isdir(os.path.dirname(self.markdown_path) or "."):
            raise SystemExit(f"{self.markdown_path}: directory {os.path.dirname(self.markdown_path)} does not exist")

    def table(self, title: str, columns: list[Column]) -> Table:
        self.tables.append(Table(self, title, columns))
        return self.tables[-1]

    def say(self, line: str) -> None:
        if not self.json:
            print(line, flush=True)

    def header(self) -> str:
        """The command, the date and the machine the tables were measured on."""
        return (f"`{self.command}` on {datetime.date.today().isoformat()}, {os.cpu_count()} cores, "
                f"Linux {platform.release()}, Python {platform.python_version()}")

    def close(self) -> None:
        if self.json:
            print(json.dumps({t.title: t.rows for t in self.tables}, indent=1))
        if self.markdown_path:
            lines = ["<!-- Written by the command below; re-run it to renew this file, do not edit by hand. -->",
                     "", self.header(), ""]
            for t in self.tables:
                lines += t.markdown()
            with open(self.markdown_path, "w") as f:
                f.write("\n".join(lines))
            self.say(f"\nwrote {self.markdown_path}")
