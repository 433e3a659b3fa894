"""Benchmark tables (emu.report.bench): rows as they come, JSON, and markdown headed by the command."""
import argparse
import json
import os

import pytest

from emu.report.bench import Bench, Column, add_options


def args_for(*argv):
    ap = argparse.ArgumentParser()
    add_options(ap)
    return ap.parse_args(list(argv))


def fill(bench):
    table = bench.table("Bring-up", [Column("hosts", "hosts"), Column("up_s", "lab up", "{:.3f} s"),
                                     Column("share", "share", "{:.0%}")])
    table.add(hosts=16, up_s=0.12345, share=0.5)
    table.add(hosts=64, up_s=0.5, share=None)
    table.note("Floor: the bare namespaces.")
    bench.close()


def test_markdown_is_headed_by_the_command_date_and_cores(tmp_path, capsys):
    out = tmp_path / "bring-up.md"
    fill(Bench(args_for("--markdown", str(out))))
    text = out.read_text()
    assert f"{os.cpu_count()} cores" in text and "`python " in text
    assert "| hosts | lab up | share |\n|---|---|---|\n| 16 | 0.123 s | 50% |\n| 64 | 0.500 s | - |" in text
    assert "Floor: the bare namespaces." in text
    printed = capsys.readouterr().out
    assert "0.123 s" in printed and f"wrote {out}" in printed       # rows print as they are measured


def test_json_prints_only_the_rows(capsys):
    fill(Bench(args_for("--json")))
    assert json.loads(capsys.readouterr().out) == {"Bring-up": [{"hosts": 16, "up_s": 0.12345, "share": 0.5},
                                                                {"hosts": 64, "up_s": 0.5, "share": None}]}


def test_a_markdown_file_in_a_missing_directory_is_refused_before_any_work(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        Bench(args_for("--markdown", str(tmp_path / "nowhere" / "x.md")))
