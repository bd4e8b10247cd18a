"""A standalone Flink cluster (JobManager + TaskManager) from the apache-flink wheel's ``bin/``.

For running jobs the way operators do: ``nextwatch jobs submit features`` sends a
job to it with ``flink run -py`` at parallelism 2, ``nextwatch jobs list`` and
``nextwatch jobs stop`` take a savepoint and stop it. Everything lives under
``<state dir>/flink-cluster`` (config, lib folder, logs, pids); loopback only.

Quirks handled here (see ../shared/facts/engines.md): our own ``FLINK_CONF_DIR``;
``python.executable`` and ``python.client.executable`` set; the TaskManager started
with the virtual environment on ``PATH`` (thread mode); ``FLINK_LIB_DIR`` holding
the wheel's ``lib/*.jar`` plus ``opt/flink-python`` (else a second thread-mode job
fails in pemja); one ``FLINK_IDENT_STRING`` for start and stop.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from connectors.config import state_dir
from connectors.errors import JobControlError
from infra.process import RunRecord, port_open, stable_ports
from infra.services import ServiceStatus

IDENT = "nextwatch"
TASK_SLOTS = 4


def flink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def cluster_dir() -> Path:
    return state_dir() / "flink-cluster"


def _java_opts() -> str:
    text = (flink_home() / "conf" / "config.yaml").read_text()
    match = re.search(r"^\s+all:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else ""


def environment() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "FLINK_CONF_DIR": str(cluster_dir() / "conf"),
        "FLINK_LIB_DIR": str(cluster_dir() / "lib"),
        "FLINK_IDENT_STRING": IDENT,
        "VIRTUAL_ENV": sys.prefix,
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
    }


def _write_config(rest_port: int, rpc_port: int) -> None:
    from jobs.runtime import RECOVERY_SETTINGS, FlinkConfig

    checkpoints = FlinkConfig.load().checkpoint_uri()
    savepoints = (state_dir() / "flink" / "savepoints").resolve().as_uri()
    settings = {
        "env.java.opts.all": _java_opts(),
        "env.log.dir": str(state_dir() / "logs" / "flink"),
        "env.pid.dir": str(state_dir() / "run" / "flink"),
        "jobmanager.rpc.address": "127.0.0.1", "jobmanager.bind-host": "127.0.0.1",
        "jobmanager.rpc.port": str(rpc_port), "jobmanager.memory.process.size": "1024m",
        "taskmanager.host": "127.0.0.1", "taskmanager.bind-host": "127.0.0.1",
        # enough slots to rescale a job to 4 (nextwatch jobs upgrade -p 4)
        "taskmanager.numberOfTaskSlots": str(TASK_SLOTS), "taskmanager.memory.process.size": "3072m",
        "rest.address": "127.0.0.1", "rest.bind-address": "127.0.0.1", "rest.port": str(rest_port),
        "parallelism.default": "2",
        "python.executable": sys.executable, "python.client.executable": sys.executable,
        "execution.checkpointing.dir": checkpoints, "state.checkpoints.dir": checkpoints,
        "state.savepoints.dir": savepoints,
        **RECOVERY_SETTINGS,
    }
    conf = cluster_dir() / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "config.yaml").write_text("".join(f"{k}: {_yaml(v)}\n" for k, v in settings.items()))
    for name in ("log4j.properties", "log4j-cli.properties", "log4j-console.properties"):
        (conf / name).write_text((flink_home() / "conf" / name).read_text())
    # "localhost" entries start locally; anything else would be reached over ssh
    (conf / "masters").write_text(f"localhost:{rest_port}\n")
    (conf / "workers").write_text("localhost\n")
    for folder in (state_dir() / "logs" / "flink", state_dir() / "run" / "flink"):
        folder.mkdir(parents=True, exist_ok=True)
    lib = cluster_dir() / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    for jar in [*(flink_home() / "lib").glob("*.jar"), *(flink_home() / "opt").glob("flink-python-*.jar")]:
        link = lib / jar.name
        if not link.exists():
            link.symlink_to(jar)


def _yaml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _script(name: str) -> list[str]:
    return ["bash", str(flink_home() / "bin" / name)]


class FlinkCluster:
    name = "flink-cluster"

    def start(self) -> str:
        record = RunRecord.load(self.name)
        if record is not None and port_open(record.ports["rest"]):
            return f"http://127.0.0.1:{record.ports['rest']}"
        ports = stable_ports("flink-cluster", ["rest", "rpc"])
        rest, rpc = ports["rest"], ports["rpc"]
        _write_config(rest, rpc)
        subprocess.run(_script("start-cluster.sh"), env=environment(), check=True, capture_output=True)
        RunRecord(self.name, os.getpid(), {"rest": rest, "rpc": rpc}, str(state_dir() / "logs" / "flink"),
                  time.time()).save()
        deadline = time.monotonic() + 90
        while not self._taskmanagers(rest):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Flink cluster did not come up; logs in {state_dir() / 'logs' / 'flink'}")
            time.sleep(1)
        return f"http://127.0.0.1:{rest}"

    @staticmethod
    def _taskmanagers(rest: int) -> int:
        import json
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{rest}/taskmanagers", timeout=2) as response:
                return len(json.load(response).get("taskmanagers", []))
        except OSError:
            return 0

    def status(self) -> ServiceStatus:
        record = RunRecord.load(self.name)
        if record is None or not port_open(record.ports["rest"]):
            return ServiceStatus(self.name, "stopped")
        count = self._taskmanagers(record.ports["rest"])
        return ServiceStatus(self.name, "running" if count else "unhealthy",
                             f"http://127.0.0.1:{record.ports['rest']}, {count} TaskManager(s)")

    def stop(self) -> None:
        if RunRecord.load(self.name) is None:
            return
        subprocess.run(_script("stop-cluster.sh"), env=environment(), check=False, capture_output=True)
        record = RunRecord.load(self.name)
        if record is not None:
            record.forget()


def flink_cli(*args: str, timeout_s: float = 300,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the wheel's ``flink`` client against the cluster."""
    return subprocess.run([*_script("flink"), *args], env={**environment(), **(env or {})}, capture_output=True,
                          text=True, timeout=timeout_s, check=False)


def submit(module_path: Path, parallelism: int = 2, savepoint: str | None = None,
           env: dict[str, str] | None = None) -> str:
    """``flink run -d -p N -py <job>``; returns the job id.

    The job is built by the client process, so its configuration (topics, keyspace)
    comes from the config file and ``env`` (NEXTWATCH_* variables) of this call.
    """
    from jobs.runtime import FlinkConfig, check_restore_mode, record_execution_mode

    flink = FlinkConfig.load({**os.environ, **(env or {})})
    if savepoint:
        check_restore_mode(savepoint, flink.execution_mode)
    FlinkCluster().start()
    args = ["run", "-d", "-p", str(parallelism)]
    if savepoint:
        args += ["-s", savepoint]
    result = flink_cli(*args, "-py", str(module_path), env=env)
    match = re.search(r"JobID ([0-9a-f]{32})", result.stdout + result.stderr)
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"flink run failed ({result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")
    record_execution_mode(flink.checkpoint_path() / match.group(1), flink.execution_mode)
    return match.group(1)


def job_parallelism(job_id: str) -> dict[str, int]:
    """Operator name -> parallelism of a job, from the cluster's REST API."""
    import json
    import urllib.request

    record = RunRecord.load(FlinkCluster.name)
    if record is None:
        return {}
    with urllib.request.urlopen(f"http://127.0.0.1:{record.ports['rest']}/jobs/{job_id}", timeout=5) as response:
        return {v["name"]: v["parallelism"] for v in json.load(response)["vertices"]}


def job_metrics(job_id: str, names: set[str], rest_port: int | None = None) -> dict[str, float]:
    """Metric name -> value summed over every operator and subtask of a job, from the REST API.

    Operator metrics are scoped ``<operator>.<name>``; ``names`` are matched on the last part. The REST
    port is the standalone cluster's unless given (a mini-cluster started with ``rest.port`` set).
    """
    import json
    import urllib.parse
    import urllib.request

    if rest_port is None:
        record = RunRecord.load(FlinkCluster.name)
        if record is None:
            return {}
        rest_port = record.ports["rest"]
    base = f"http://127.0.0.1:{rest_port}/jobs/{job_id}"

    def get(path: str) -> Any:
        with urllib.request.urlopen(base + path, timeout=5) as response:
            return json.load(response)

    totals: dict[str, float] = {}
    for vertex in get("")["vertices"]:
        path = f"/vertices/{vertex['id']}/subtasks/metrics"
        wanted = [m["id"] for m in get(path) if m["id"].rsplit(".", 1)[-1] in names]
        if wanted:
            query = urllib.parse.urlencode({"get": ",".join(wanted), "agg": "sum"})
            for metric in get(f"{path}?{query}"):
                name = metric["id"].rsplit(".", 1)[-1]
                totals[name] = totals.get(name, 0.0) + float(metric["sum"])
    return totals


def running_jobs() -> list[tuple[str, str]]:
    """(job id, name) of running jobs."""
    result = flink_cli("list", "-r")
    return re.findall(r"([0-9a-f]{32}) : (\S+) \(RUNNING\)", result.stdout)


def stop(job_id: str, env: dict[str, str] | None = None) -> str:
    """Stop with a savepoint; returns its path, recording the execution mode the job was submitted in (from
    ``env``, as given to :func:`submit`, over this process's environment)."""
    savepoints = (state_dir() / "flink" / "savepoints").resolve()
    result = flink_cli("stop", "--savepointPath", savepoints.as_uri(), job_id)
    match = re.search(r"Savepoint completed\. Path: (\S+)", result.stdout)
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"flink stop failed:\n{(result.stdout + result.stderr)[-3000:]}")
    from jobs.runtime import FlinkConfig, record_execution_mode

    record_execution_mode(Path(match.group(1).removeprefix("file:")),
                          FlinkConfig.load({**os.environ, **(env or {})}).execution_mode)
    return match.group(1)


def job_status(job_id: str) -> tuple[str, dict[str, str]]:
    """A job's state and each operator's status, from the cluster's REST API."""
    import json
    import urllib.request

    record = RunRecord.load(FlinkCluster.name)
    if record is None:
        raise RuntimeError("no Flink cluster is running")
    with urllib.request.urlopen(f"http://127.0.0.1:{record.ports['rest']}/jobs/{job_id}", timeout=5) as response:
        job = json.load(response)
    return job["state"], {v["name"]: v["status"] for v in job["vertices"]}


def wait_running(job_id: str, timeout_s: float = 180) -> None:
    """Until the job and every one of its operators run; an error naming the state it ended in otherwise."""
    deadline = time.monotonic() + timeout_s
    state, operators = job_status(job_id)
    while not (state == "RUNNING" and set(operators.values()) == {"RUNNING"}):
        if state in ("FAILED", "CANCELED", "FINISHED") or time.monotonic() > deadline:
            waiting = {name: status for name, status in operators.items() if status != "RUNNING"}
            raise JobControlError(f"job {job_id} is {state}, not running; operators not running: {waiting}")
        time.sleep(1)
        state, operators = job_status(job_id)


def upgrade(job: str, parallelism: int, env: dict[str, str] | None = None) -> tuple[str, str, str]:
    """Stop the running ``job`` with a savepoint, submit the code as it is now from it at ``parallelism``,
    and wait until it runs; (old job id, savepoint, new job id). If the new one does not start, the error
    says which savepoint holds the state."""
    from jobs.flink import job_file, load_job

    name = load_job(job).name
    running = [job_id for job_id, running_name in running_jobs() if running_name == name]
    if len(running) != 1:
        raise JobControlError(f"{len(running)} running jobs named {name}; upgrade needs exactly one "
                           "(nextwatch jobs list)")
    savepoint = stop(running[0], env)
    try:
        new_id = submit(job_file(job), parallelism, savepoint, env)
        wait_running(new_id)
    except RuntimeError as exc:  # JobControlError among them
        raise JobControlError(f"{name} stopped with savepoint {savepoint} but the new version did not start: {exc}\n"
                           f"start it again from there: nextwatch jobs submit {job} -p {parallelism} "
                           f"--from-savepoint {savepoint}") from exc
    return running[0], savepoint, new_id
