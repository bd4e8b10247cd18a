"""Background processes of the local stack: start detached, remember, check, stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from connectors.config import state_dir


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether a loopback port can be listened on now (connections of a stopped server that linger in
    TIME_WAIT do not count: servers bind with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def stable_ports(service: str, names: list[str], configured: Mapping[str, int] | None = None) -> dict[str, int]:
    """Ports for ``service``: those it had before (``<state dir>/ports.json``, else ``configured``: what the
    config file names) where still free, else free ones.

    A restarted service comes back where running jobs and clients look for it (the config is rewritten
    with the same ports), so they reconnect on their own.
    """
    path = state_dir() / "ports.json"
    known: dict[str, dict[str, int]] = json.loads(path.read_text()) if path.exists() else {}
    before = {**(configured or {}), **known.get(service, {})}
    ports: dict[str, int] = {}
    for name in names:
        port = before.get(name)
        taken = set(ports.values())
        ports[name] = port if isinstance(port, int) and port > 0 and port not in taken and port_free(port) \
            else free_port()
        while ports[name] in taken:
            ports[name] = free_port()
    known[service] = ports
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=2, sort_keys=True))
    return ports


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux ``/proc``)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@dataclass
class RunRecord:
    """What `up` left running, so `status` and `down` find it again."""

    name: str
    pid: int
    ports: dict[str, int] = field(default_factory=dict)
    log: str = ""
    started_at: float = 0.0

    @staticmethod
    def path(name: str) -> Path:
        return state_dir() / "run" / f"{name}.json"

    @classmethod
    def load(cls, name: str) -> RunRecord | None:
        path = cls.path(name)
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self) -> None:
        path = self.path(self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))

    def forget(self) -> None:
        self.path(self.name).unlink(missing_ok=True)

    @property
    def alive(self) -> bool:
        return pid_alive(self.pid)


def start_detached(command: list[str], log_path: Path, env: Mapping[str, str] | None = None,
                   cwd: Path | None = None) -> int:
    """Start ``command`` in its own session (it outlives this process); output goes to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
        )
    return proc.pid


def stop_process(pid: int, timeout_s: float = 20.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after ``timeout_s``."""
    if not pid_alive(pid):
        return
    for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):  # reap it if it is our child
                os.waitpid(pid, os.WNOHANG)
            if not pid_alive(pid):
                return
            time.sleep(0.1)
    raise RuntimeError(f"process {pid} did not stop")


def tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
