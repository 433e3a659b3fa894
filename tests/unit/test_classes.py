"""Traffic classes for any program: the nft rule and the cgroup join, checked without root."""
from pathlib import Path

from emu.fabric import classes


def test_the_rule_sets_the_dscp_of_sockets_made_in_the_class_cgroup(monkeypatch):
    monkeypatch.setattr(classes, "cgroup2_root", lambda: Path("/sys/fs/cgroup/unified"))
    lines = classes.rule_lines(Path("/sys/fs/cgroup/unified/emu/lab1/tos-0x60"), 0x60)
    # nft looks the path up under /sys/fs/cgroup; the level counts from the cgroup2 root
    assert lines[-1] == ('add rule ip emu_classes out socket cgroupv2 level 3 "unified/emu/lab1/tos-0x60" '
                         'ip dscp set 24')
    assert "hook output priority mangle" in lines[1]


def test_a_program_joins_its_class_before_it_runs():
    argv = classes.joined(Path("/cg/emu/l/tos-0x20"), ["ip", "netns", "exec", "ns", "iperf3", "-c", "x"])
    assert argv[:2] == ["sh", "-c"] and argv[3:] == ["/cg/emu/l/tos-0x20", "ip", "netns", "exec", "ns", "iperf3", "-c", "x"]
    assert argv[2] == 'echo $$ > "$0/cgroup.procs" && exec "$@"'
