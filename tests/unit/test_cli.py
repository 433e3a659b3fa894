"""CLI behaviour that needs no root: refusals are one line with a non-zero exit."""
import os

from click.testing import CliRunner

from emu.cli import main

TOPO = "name: nr\nfabric: {type: star, hosts: 2}\n"


def test_non_root_gets_one_line(tmp_path, monkeypatch):
    path = tmp_path / "t.yaml"
    path.write_text(TOPO)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(main, ["up", str(path)])
    assert result.exit_code == 1
    assert result.output == "emu: root (CAP_NET_ADMIN) is needed to build labs: run as root or with sudo\n"


def test_topo_check_ok_and_bad(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(TOPO)
    result = CliRunner().invoke(main, ["topo", "check", str(good)])
    assert result.exit_code == 0 and "2 compute, 1 switch, 2 links" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfabric: {type: star, hosts: -1}\n")
    result = CliRunner().invoke(main, ["topo", "check", str(bad)])
    assert result.exit_code == 1
    assert result.output == f"emu: {bad}: fabric.hosts: must be a non-negative integer, got -1\n"


def test_every_verb_has_help():
    runner = CliRunner()
    for verb in (["up"], ["down"], ["ls"], ["status"], ["exec"], ["clean"], ["topo", "check"], ["topo", "graph"], ["demo"],
                 ["bench", "allreduce"], ["bench", "alltoall"]):
        result = runner.invoke(main, [*verb, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output


def test_size_ranges_double_like_nccl_tests():
    import pytest
    from emu.errors import EmuError
    from emu.experiments.collectives import parse_sizes
    assert parse_sizes("1M:8M") == [2**20, 2**21, 2**22, 2**23]
    assert parse_sizes("64K,1G") == [65536, 2**30]
    assert parse_sizes("1536") == [1536]
    for bad in ("8M:1M", "lots", "0"):
        with pytest.raises(EmuError):
            parse_sizes(bad)
