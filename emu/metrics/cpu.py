"""This machine's CPU over an interval, from /proc/stat: how much of it an experiment's agents
and the kernel's packet work took (a lab's numbers mean little when the cores were full)."""


def cpu_times() -> list[int]:
    """The machine's CPU time so far (all cores), in /proc/stat's order: user, nice, system,
    idle, iowait, irq, softirq, steal."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def cpu_shares(before: list[int], after: list[int]) -> dict[str, float]:
    """Shares of all cores' time between two cpu_times(): user (the agents), kernel (system
    calls, interrupts and softirqs: the veths, queues and TCP) and busy (the two)."""
    user, nice, system, idle, iowait, irq, softirq, steal = (b - a for a, b in zip(before, after))
    total = max(1, user + nice + system + idle + iowait + irq + softirq + steal)
    shares = {"user": (user + nice) / total, "kernel": (system + irq + softirq) / total}
    return {**shares, "busy": shares["user"] + shares["kernel"]}
