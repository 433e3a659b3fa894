"""CLI behaviour that needs no root: refusals are one line with a non-zero exit."""
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from emu.cli import main
from emu.terminate import EXIT_STATUS, clean_up_on_sigterm

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
    import click

    def verbs(group, path=()):
        for name, command in group.commands.items():
            yield (*path, name)
            if isinstance(command, click.Group):
                yield from verbs(command, (*path, name))
    runner = CliRunner()
    found = list(verbs(main))
    assert {("jobs", "submit"), ("jobs", "ls"), ("jobs", "cancel"), ("fault", "ssd"), ("fault", "memory")} <= set(found)
    for verb in found:
        result = runner.invoke(main, [*verb, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, verb
        command = main
        for name in verb:
            command = command.commands[name]
        assert command.help, f"emu {' '.join(verb)} has no help text"


def test_size_ranges_double_like_nccl_tests():
    import pytest
    from emu.errors import EmuError
    from emu.units import parse_sizes
    assert parse_sizes("1M:8M") == [2**20, 2**21, 2**22, 2**23]
    assert parse_sizes("64K,1G") == [65536, 2**30]
    assert parse_sizes("1536") == [1536]
    for bad in ("8M:1M", "lots", "0"):
        with pytest.raises(EmuError):
            parse_sizes(bad)


def test_help_and_version():
    for flag in ("-h", "--help"):
        result = CliRunner().invoke(main, [flag])
        assert result.exit_code == 0 and "Usage:" in result.output and "--version" in result.output
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("emu, version ")


def fake_lab(tmp_path, monkeypatch, name="fk"):
    """A state file for a lab that is not in the kernel: enough for verbs that read state first."""
    import json
    from emu import labfiles as lab_mod
    from emu.topo import build
    monkeypatch.setattr(lab_mod, "STATE_DIR", tmp_path)
    topo = build("star", name, hosts=2)
    from emu.backends import lay_out
    from emu.plan import make_plan
    plan = make_plan(topo)
    (tmp_path / f"{name}.json").write_text(json.dumps({
        "name": name, "claimed": True, "topology": topo.to_dict(), "plan": plan.to_dict(),
        "layout": lay_out(name, [n.name for n in plan.nodes]).to_dict()}))
    return name


def test_non_root_exec_and_bench_get_one_line(tmp_path, monkeypatch):
    name = fake_lab(tmp_path, monkeypatch)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for argv in (["exec", "--lab", name, "c0", "--", "true"],
                 ["bench", "allreduce", "--lab", name, "--sizes", "64K"]):
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 1, result.output
        assert result.output == "emu: root (CAP_NET_ADMIN) is needed to run programs in lab nodes: run as root or with sudo\n"


def test_lab_named_twice_differently_is_refused(tmp_path, monkeypatch):
    name = fake_lab(tmp_path, monkeypatch)
    result = CliRunner().invoke(main, ["status", name, "--lab", "other"])
    assert result.exit_code == 1 and result.output == f"emu: two lab names given ({name} and --lab other)\n"
    result = CliRunner().invoke(main, ["status", "--lab", name, "--json"])
    assert result.exit_code == 0 and f'"name": "{name}"' in result.output


def test_sigterm_becomes_an_exit_that_runs_the_clean_up():
    before = signal.getsignal(signal.SIGTERM)
    cleaned = []
    try:
        clean_up_on_sigterm()
        with pytest.raises(SystemExit) as ended:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):           # the handler runs between two bytecodes of this thread
                    pass
            finally:
                cleaned.append(True)
        assert ended.value.code == EXIT_STATUS == 143 and cleaned
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN      # a second SIGTERM waits for the clean-up
    finally:
        signal.signal(signal.SIGTERM, before)


def test_the_cli_reference_is_what_the_cli_says():
    """docs/cli.md is written from the CLI (scripts/cli_reference.py); a changed verb rewrites it."""
    import runpy
    script = Path(__file__).resolve().parents[2] / "scripts" / "cli_reference.py"
    reference = runpy.run_path(str(script))["reference"]
    assert (script.parents[1] / "docs" / "cli.md").read_text() == reference(), \
        "docs/cli.md is out of date: python scripts/cli_reference.py"


def test_the_cli_is_thin():
    """One module a verb group, none over 300 lines: verbs parse, call the library and print."""
    from pathlib import Path
    modules = sorted((Path(__file__).resolve().parents[2] / "emu" / "cli").glob("*.py"))
    long = {m.name: n for m in modules if (n := len(m.read_text().splitlines())) > 300}
    assert len(modules) >= 8 and long == {}


def test_down_all_goes_on_past_a_lab_it_cannot_reach(monkeypatch):
    """A lab on a Ray cluster that does not answer from here stops neither `emu down --all` nor the
    other labs' teardown: its line says why, and the exit status is 1."""
    from emu.errors import EmuError
    from emu.lab import Lab
    downed = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def down(self):
            if self.name == "far":
                raise EmuError("cannot reach the Ray cluster at 10.9.9.9:6379: timed out")
            downed.append(self.name)
    monkeypatch.setattr(Lab, "names", staticmethod(lambda: ["a", "far", "z"]))
    monkeypatch.setattr(Lab, "get", staticmethod(Fake))
    result = CliRunner().invoke(main, ["down", "--all"])
    assert result.exit_code == 1 and downed == ["a", "z"]
    assert result.stderr == "emu: lab 'far' is not down: cannot reach the Ray cluster at 10.9.9.9:6379: timed out\n"
    result = CliRunner().invoke(main, ["down", "far"])       # named: its error is the one line
    assert result.exit_code == 1 and result.stderr.endswith("timed out\n")


def test_clean_all_says_what_it_removed_and_which_lab_it_could_not(monkeypatch):
    from emu import lab as lab_module
    from emu.errors import EmuError

    def clean(only, on_failure, forget):
        on_failure("far", EmuError("cannot reach the Ray cluster at 10.9.9.9:6379: timed out"))
        return {"a": 3}
    monkeypatch.setattr(lab_module, "clean", clean)
    result = CliRunner().invoke(main, ["clean", "--all"])
    assert result.exit_code == 1 and result.stdout == "removed lab a (3 namespaces)\n"
    assert result.stderr == "emu: lab 'far' is not cleaned: cannot reach the Ray cluster at 10.9.9.9:6379: timed out\n"


def test_ls_does_not_ask_the_ray_cluster_of_a_lab_whose_daemon_is_gone(tmp_path, monkeypatch):
    """Its live state is unknown ("-"): asking an unreachable cluster took ~20 s a lab."""
    import json
    from emu import labfiles as lab_mod
    from emu.backends import lay_out
    from emu.fabric.workers import RayWorkers
    from emu.plan import make_plan
    from emu.topo import build
    monkeypatch.setattr(lab_mod, "STATE_DIR", tmp_path)
    topo = build("star", "far", hosts=2)
    plan = make_plan(topo)
    names = [n.name for n in plan.nodes]
    hosts = [{"underlay": f"10.9.9.{k}", "device": "eth0", "node": f"n{k}"} for k in (1, 2)]
    layout = lay_out("far", names, machines={n: i % 2 for i, n in enumerate(names)}).on_cluster("10.9.9.1:6379", hosts)
    (tmp_path / "far.json").write_text(json.dumps({"name": "far", "claimed": True, "topology": topo.to_dict(),
                                                   "plan": plan.to_dict(), "layout": layout.to_dict()}))

    def asked(self):
        raise AssertionError("emu ls asked the Ray cluster")
    monkeypatch.setattr(RayWorkers, "_connect", asked)
    result = CliRunner().invoke(main, ["ls", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert (row["name"], row["live"], row["nodes"]) == ("far", None, 3)
