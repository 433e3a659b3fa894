"""Bad topology input: each refused in one short line naming file, key and reason, fast, by both
`emu topo check` and `emu up` (which must refuse before it creates anything)."""
import time

import pytest
from click.testing import CliRunner

from emu.cli import main

STAR = "name: bad\nfabric: {type: star, hosts: 2}\n"
LINK = "name: bad\nnodes: {a: {kind: compute}, s: {kind: switch}}\nlinks: [{endpoints: [a, s], %s}]\n"

# (file content, what the one line must say)
CASES = {
    "duplicate key": ("name: bad\nnodes:\n  c0: {kind: compute}\n  c0: {kind: switch}\n  s: {kind: switch}\n"
                      "links: [{endpoints: [c0, s]}]\n", "line 4: not valid YAML: duplicate key 'c0'"),
    "rate below a bit": (LINK % "rate: 0.4", "links[0].rate: bad rate 0.4: must be at least 1 bit/s"),
    "rate zero": (LINK % "rate: 0", "links[0].rate: bad rate 0: must be at least 1 bit/s"),
    "rate infinite": (LINK % "rate: .inf", "links[0].rate: bad rate inf: must be finite"),
    "rate 1bit": (LINK % "rate: 1bit", "links[0].rate: 1bit at scale 1 is 1bit emulated; links are shaped"),
    "buffer too big": (LINK % "buffer: 100GiB", "links[0].buffer: 100GiB: a VL buffer holds 4096 B..1 GiB"),
    "buffer 5GiB": (LINK % "buffer: 5GiB", "links[0].buffer: 5GiB: a VL buffer holds"),
    "buffer 1B": (LINK % "buffer: 1B", "links[0].buffer: 1B: a VL buffer holds"),
    "tiny scale": ("name: bad\nscale: 1.0e-300\nfabric: {type: star, hosts: 2}\n",
                   "defaults.rate: 200Gbit at scale 1e-300 is 2e-289bit emulated"),
    "not utf-8": (b"name: bad\n# caf\xe9\n", "line 2: not UTF-8 text (byte 15)"),
    "deep nesting": ("name: " + "[" * 100_000, "not valid YAML"),
    "alias bomb": ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                   "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                   "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nname: {fabric: *g}\n",
                   "expands to more than 500000 values"),
    "node name with newline": ('name: bad\nnodes: {"c0\\n": {kind: compute}, s: {kind: switch}}\nlinks: []\n',
                               "bad name 'c0\\n'"),
    "lab name with newline": ('name: "bad\\n"\nfabric: {type: star, hosts: 2}\n', "name: bad name 'bad\\n'"),
    "leaf-spine too large": ("name: bad\nfabric: {type: leaf-spine, leaves: 1000, spines: 100, hosts_per_leaf: 64}\n",
                             "a lab holds at most 4096 nodes"),
    "star of 100M hosts": ("name: bad\nfabric: {type: star, hosts: 100000000}\n", "would have more than 1024 ports"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("verb", [["topo", "check"], ["up"]])
def test_refused_in_one_line(tmp_path, case, verb):
    content, expected = CASES[case]
    path = tmp_path / "bad.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    start = time.perf_counter()
    result = CliRunner().invoke(main, [*verb, str(path)])
    took = time.perf_counter() - start
    assert result.exit_code == 1, result.output
    line = result.output
    assert line.count("\n") == 1 and len(line) < 300, line
    assert line.startswith(f"emu: {path}: ")
    assert expected.replace("\n", " ") in line
    assert took < 1.0, f"{case}: {took:.2f} s"


def test_a_scale_written_with_an_exponent_is_a_number(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("name: ok\nscale: 1e-3\nfabric: {type: star, hosts: 2}\n")   # YAML 1.1 reads this as text
    result = CliRunner().invoke(main, ["topo", "check", str(path)])
    assert result.exit_code == 0 and "scale 0.001" in result.output


def test_a_huge_file_is_refused_without_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    hosts = "".join(f"  h{i}: {{kind: compute}}\n" for i in range(400_000))
    path.write_text("name: big\nnodes:\n" + hosts)
    start = time.perf_counter()
    result = CliRunner().invoke(main, ["topo", "check", str(path)])
    assert result.exit_code == 1 and "larger than 8 MiB" in result.output
    assert time.perf_counter() - start < 1.0
