"""Agent processes an experiment starts in lab nodes: started, awaited, and always stopped."""
import json
import subprocess
import sys

from emu.errors import EmuError


def command(module: str) -> list[str]:
    """argv prefix running agents.<module> with this interpreter (the one emu is installed in)."""
    return [sys.executable, "-m", f"agents.{module}"]


class Agents:
    """The processes of one run; `with Agents(lab) as agents:` stops whatever is left on exit."""

    def __init__(self, lab):
        self.lab = lab
        self.procs: list[subprocess.Popen] = []

    def start(self, node: str, argv: list[str], ready: bool = False) -> subprocess.Popen:
        """Start argv in `node`; with `ready`, wait for the first line it prints (a server listening)."""
        proc = self.lab.node(node).popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        if ready and not proc.stdout.readline():
            raise EmuError(f"{argv[2]} on {node} did not start: {_last_line(proc.stderr.read())}")
        return proc

    @staticmethod
    def result(node: str, proc: subprocess.Popen, timeout: float = 600) -> dict:
        """The JSON object the agent printed (its first line), or its last error line as an EmuError."""
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise EmuError(f"{proc.args[2]} on {node} failed: {_last_line(err)}")
        return json.loads(out.splitlines()[0])

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
        self.procs = []

    def __enter__(self) -> "Agents":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1]
