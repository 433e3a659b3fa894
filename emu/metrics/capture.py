"""Packet capture on a lab port: tcpdump in the node (in the kernel, headers only), scapy after.

tcpdump copies 96 bytes a packet (enough for IP and TCP headers) into a kernel ring, so the
lab's shaping is not slowed by Python; scapy reads the file afterwards for the summary.
"""
import signal
import subprocess
from collections import Counter

from emu.errors import EmuError

SNAPLEN = 96


def capture(node, port: str, out: str, count: int | None = None, duration: float = 5.0) -> None:
    """Capture on `port` of lab node `node` (a NodeHandle) to pcap `out`: `count` packets or `duration` s."""
    argv = ["tcpdump", "-i", port, "-s", str(SNAPLEN), "-w", out, "-U", "-q"] + (["-c", str(count)] if count else [])
    try:
        proc = node.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise EmuError("tcpdump is not installed (apt-get install tcpdump; scripts/setup.sh does)") from None
    try:
        proc.wait(timeout=duration)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)         # tcpdump flushes and closes the file on SIGINT
        proc.wait(timeout=10)
    if proc.returncode not in (0, -signal.SIGINT, 130):
        raise EmuError(f"tcpdump on {node.name}:{port} failed: {(proc.stderr.read() or '').strip()[-200:]}")


def summarise(path: str, classes: dict[int, str], top: int = 5) -> dict:
    """Packets and bytes (IP length) per DSCP class selector (SL -> traffic class name, as
    `classes` says), and the top talkers by bytes."""
    from scapy.layers.inet import IP
    from scapy.utils import PcapReader
    packets, nbytes, talkers = Counter(), Counter(), Counter()
    with PcapReader(path) as reader:
        for packet in reader:
            if IP in packet:
                ip = packet[IP]
                packets[ip.tos >> 5] += 1
                nbytes[ip.tos >> 5] += ip.len
                talkers[(ip.src, ip.dst)] += ip.len
    return {"classes": [{"sl": sl, "tos": f"0x{sl << 5:02x}", "class": classes.get(sl, "(none)"),
                         "packets": packets[sl], "bytes": b} for sl, b in nbytes.most_common()],
            "talkers": [{"src": src, "dst": dst, "bytes": b} for (src, dst), b in talkers.most_common(top)]}
