"""The lab's OpenFlow controller: an os-ken process the lab's daemon runs for the lab's life.

    python -m emu.fabric.openflow.controller CONFIG.json

CONFIG (written by the backend, emu.fabric.openflow.backend): the lab, its plan, switch ->
datapath id, the sweep delay, the two sockets and the app (a file `path.py` or `path.py:Class`,
a module `pkg.mod:Class`; FabricApp if none). The switches connect on one unix socket (OpenFlow
1.3); the lab asks on the other, a JSON line a request and a JSON line its answer (FabricApp.request).

The process ends with the daemon that started it (PR_SET_PDEATHSIG), so a killed daemon leaves
no controller behind; the bridges keep their tables meanwhile (fail mode secure) and the next
controller installs them anew.
"""
import ctypes
import importlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from emu.errors import FabricError

OFP_PORT = 6653         # unused on a unix socket, but os-ken listens on none without a port
START_TIMEOUT = 30.0    # seconds for every switch to connect and take its table
PR_SET_PDEATHSIG = 1


def load_app(spec: str | None):
    """The app class `spec` names (see the module's doc)."""
    from emu.fabric.openflow.app import FabricApp
    if not spec:
        return FabricApp
    where, _, name = spec.partition(":")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise FabricError(f"openflow app {where}: no such file")
        module_spec = importlib.util.spec_from_file_location(f"emu_openflow_app_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    found = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, FabricApp)
             and c.__module__ == module.__name__ and (not name or c.__name__ == name)]
    if len(found) != 1:
        raise FabricError(f"openflow app {spec}: " + (f"no FabricApp subclass {name or ''} in it".replace("  ", " ")
                                                       if not found else "several FabricApp subclasses: name one "
                                                       "(path.py:Class)"))
    return found[0]


class UnixSwitchSocket:
    """A switch's unix socket as os-ken's Datapath takes it: it sets TCP_NODELAY on every
    switch's socket, which a unix socket refuses."""

    def __init__(self, sock):
        self._sock = sock

    def setsockopt(self, level, *args):
        if level != socket.IPPROTO_TCP:
            self._sock.setsockopt(level, *args)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def serve_requests(app, path: str) -> None:
    from os_ken.lib import hub

    def handle(sock, _address):
        with sock, sock.makefile("rwb") as f:
            for line in f:
                try:
                    answer = {"ok": app.request(json.loads(line))}
                except Exception as e:      # the asker gets the reason; the controller goes on
                    answer = {"error": f"{type(e).__name__}: {e}"}
                f.write(json.dumps(answer).encode() + b"\n")
                f.flush()
    Path(path).unlink(missing_ok=True)
    hub.StreamServer((path, 0), handle).serve_forever()


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    die_with(config["daemon"])
    from os_ken import cfg
    from os_ken.lib import hub
    from os_ken.base.app_manager import AppManager
    from os_ken.controller import controller
    take = controller.datapath_connection_factory
    controller.datapath_connection_factory = lambda sock, address: take(UnixSwitchSocket(sock), address or "unix")
    logging.basicConfig(level=getattr(logging, os.environ.get("EMU_OPENFLOW_LOG", "INFO")), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg.CONF(args=[], project="os_ken")
    cfg.CONF.set_override("ofp_listen_host", config["ofp_socket"])
    cfg.CONF.set_override("ofp_tcp_listen_port", OFP_PORT)
    Path(config["ofp_socket"]).unlink(missing_ok=True)
    try:
        cls = load_app(config.get("app"))
    except FabricError as e:
        sys.exit(str(e))        # (the last line of its log: the daemon's word, and `emu up`'s)
    cls.config = config
    manager = AppManager.get_instance()
    by_name, default = {"emu-openflow-app": cls}, manager.load_app
    manager.load_app = lambda name: by_name.get(name) or default(name)
    manager.load_apps(list(by_name))
    services = manager.instantiate_apps(**manager.create_contexts())
    app = next(a for a in manager.applications.values() if isinstance(a, cls))
    services.append(hub.spawn(serve_requests, app, config["api_socket"]))
    hub.joinall(services)


# -- the lab's side ------------------------------------------------------------------------

def ask(path: str, request: dict, timeout: float = 30.0):
    """One request to a running controller; its answer, or FabricError with its reason."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(json.dumps(request).encode() + b"\n")
            with s.makefile("rb") as f:
                answer = json.loads(f.readline() or b"{}")
    except (OSError, ValueError) as e:
        raise FabricError(f"the lab's OpenFlow controller does not answer ({path}): {e}") from None
    if "error" in answer or "ok" not in answer:
        raise FabricError(f"the lab's OpenFlow controller: {answer.get('error', 'no answer')}")
    return answer["ok"]


class Controller:
    """The controller process, as the daemon holds it: started, waited for until every switch
    has its table, asked, ended."""

    def __init__(self, config: dict, config_path: Path, log_path: Path):
        self.config, self.api = {**config, "daemon": os.getpid()}, config["api_socket"]
        config_path.write_text(json.dumps(self.config))
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", __name__, str(config_path)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log,
                                         cwd=Path(__file__).resolve().parents[3])
        self.log_path = log_path

    def wait_ready(self, timeout: float = START_TIMEOUT) -> dict:
        """Until every switch is connected and has its table; FabricError (the controller ended)
        if it does not come to that."""
        deadline, wanted = time.monotonic() + timeout, len(self.config["switches"])
        status = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise FabricError(f"the OpenFlow controller ended: {self.last_line()}")
            if os.path.exists(self.api):
                try:
                    status = ask(self.api, {"op": "status"}, timeout=5)
                except FabricError:
                    status = None
                if status and len(status["connected"]) == wanted:
                    return status
            time.sleep(0.05)
        self.close()
        connected = ", ".join(status["connected"]) if status else "none"
        raise FabricError(f"the OpenFlow controller did not get every switch in {timeout:g} s (connected: "
                          f"{connected}; log {self.log_path})")

    def last_line(self) -> str:
        lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else "no output"

    def status(self) -> dict:
        return ask(self.api, {"op": "status"})

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def die_with(parent: int) -> None:
    """End when process `parent` (the daemon) ends, also if it already has."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(f"the lab's daemon ({parent}) has ended")


if __name__ == "__main__":
    main(sys.argv[1])
