"""Changing a running lab: links down and up, degraded links, GPU, SSD and memory faults."""
import json

import click

from emu.cli.common import attach, console, lab_option, main
from emu.errors import EmuError
from emu.units import format_rate


@main.command()
@click.argument("state", type=click.Choice(["down", "up"]))
@click.argument("a")
@click.argument("b")
@lab_option
@click.option("--sweep-delay", default="1s", show_default=True,
              help="when the subnet manager sweeps and installs routes over the links that are up")


@click.option("--json", "as_json", is_flag=True)
def link(state, a, b, lab_opt, sweep_delay, as_json):
    """Take the link A <-> B of a lab down or up; the subnet manager reroutes after its sweep delay."""
    from emu.units import parse_duration
    target = attach(None, lab_opt)
    target.plan.node(a).port_to(b)              # one line if the lab has no such link
    try:
        delay = parse_duration(sweep_delay)
    except ValueError as e:
        raise EmuError(f"--sweep-delay: {e}") from None
    changes = target.link_event(a, b, state == "up", delay)
    if as_json:
        click.echo(json.dumps({"link": [a, b], "state": state, "route_changes": changes}, indent=1))
        return
    console.print(f"{a} <-> {b} {state}; after {delay:g} s the subnet manager changed {len(changes)} routes")
    for line in changes:
        console.print(f"  {line}")


@main.group()
def fault():
    """Inject hardware faults into a running lab (the validator should catch them)."""


@fault.command("link")
@click.argument("a")
@click.argument("b")
@lab_option
@click.option("--rate-factor", type=float, required=True, help="the link keeps this share of its rate (0 < F <= 1)")
def fault_link(a, b, lab_opt, rate_factor):
    """A degraded link A <-> B: it runs at F of its planned rate, both directions."""
    target = attach(None, lab_opt)
    target.plan.node(a).port_to(b)              # one line if the lab has no such link
    if not 0 < rate_factor <= 1:
        raise EmuError(f"--rate-factor: must be in (0, 1], got {rate_factor:g}")
    rate = max(1, int(target.planned_rate(a, b) * rate_factor))
    target.set_link_rate(a, b, rate)
    console.print(f"{a} <-> {b} now runs at {format_rate(rate)} ({rate_factor:.0%} of its planned rate)")


@fault.command("gpu")
@click.argument("node")
@lab_option
@click.option("--gpu", type=int, required=True)
@click.option("--corrupt", "kind", flag_value="corrupt", default=True,
              help="a region of its memory reads back other bytes than written (an Xid memory error; the default)")


@click.option("--lost", "kind", flag_value="lost", help="it stops answering (Xid 79, fallen off the bus)")
@click.option("--healthy", "kind", flag_value="healthy", help="undo this GPU's fault")
def fault_gpu(node, lab_opt, gpu, kind):
    """A fault on NODE's GPU I, seen by the node's agents (running ones too) within 50 ms."""
    target = attach(None, lab_opt)
    target.set_gpu_fault(node, gpu, None if kind == "healthy" else kind)
    console.print(f"{node} GPU {gpu}: " + {"corrupt": "corrupts a region of its memory", "lost": "stops answering",
                                          "healthy": "healthy"}[kind])


@fault.command("ssd")
@click.argument("node")
@lab_option
@click.option("--ssd", type=int, required=True)
@click.option("--rate-factor", type=float, required=True, help="the SSD keeps this share of its rate (0 < F <= 1)")
def fault_ssd(node, lab_opt, ssd, rate_factor):
    """A slow SSD on storage NODE: the chunks on it are read and written at F of its rate."""
    target = attach(None, lab_opt)
    target.set_ssd_fault(node, ssd, None if rate_factor == 1 else rate_factor)
    console.print(f"{node} SSD {ssd} now runs at {rate_factor:.0%} of its rate")


@fault.command("memory")
@click.argument("node")
@lab_option
@click.option("--rate-factor", type=float, required=True, help="host memory keeps this share of its rate (0 < F <= 1)")
def fault_memory(node, lab_opt, rate_factor):
    """Slow host memory on compute NODE (what HFReduce's reductions and every copy through it cross)."""
    target = attach(None, lab_opt)
    target.set_mem_fault(node, None if rate_factor == 1 else rate_factor)
    console.print(f"{node} host memory now runs at {rate_factor:.0%} of its modelled rate")


@fault.command("clear")
@lab_option
def fault_clear(lab_opt):
    """Undo every injected fault: links back at their planned rates, GPUs healthy."""
    cleared = attach(None, lab_opt).clear_faults()
    for line in cleared or ["no fault was injected"]:
        console.print(line)
