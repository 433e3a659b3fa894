import pytest
from hypothesis import given, strategies as st

from emu.units import parse_rate, parse_size


@pytest.mark.parametrize("text,bps", [("200Gbit", 200 * 10**9), ("100Mbit", 10**8), ("1.5gbit", 1_500_000_000),
                                      ("64kbit", 64_000), (1000, 1000)])
def test_rates(text, bps):
    assert parse_rate(text) == bps


@pytest.mark.parametrize("bad", ["200Gbps", "fast", "", "-1Gbit", "0bit", True])
def test_bad_rates(bad):
    with pytest.raises(ValueError):
        parse_rate(bad)


@pytest.mark.parametrize("text,n", [("128KiB", 131072), ("1MiB", 2**20), ("64kB", 64000), (1500, 1500), ("9000", 9000)])
def test_sizes(text, n):
    assert parse_size(text) == n


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["bit", "Kbit", "Mbit", "Gbit"]))
def test_rate_roundtrip(n, unit):
    factor = {"bit": 1, "Kbit": 10**3, "Mbit": 10**6, "Gbit": 10**9}[unit]
    assert parse_rate(f"{n}{unit}") == n * factor


def test_format_size_reads_back():
    from emu.units import format_size
    assert [format_size(b) for b in (512, 131072, 186 * 2**20, 3 * 2**30)] == ["512B", "128K", "186M", "3G"]
    assert all(parse_size(format_size(2**k)) == 2**k for k in range(0, 34))
