"""``nextwatch jobs run``: a job in a child process, restarted from its latest checkpoint whenever it exits.

Flink's restart strategy (``jobs.runtime.RECOVERY_SETTINGS``) heals failures inside a running job. What
it cannot heal is the process itself ending: the JVM killed (out of memory, ``kill -9``), a failure Flink
does not restart, a host restart. The supervisor runs the job in a child process with a checkpoint
folder of its own, and when the child ends for any reason but a clean finish or Ctrl-C, starts it
again from the newest completed checkpoint in that folder, backing off from 1 s to ``max_backoff_s``;
a run that lasted ``stable_after_s`` starts the backoff again from 1 s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.runtime import job_process_environment, latest_checkpoint

LOG = logging.getLogger("nextwatch.supervise")


@dataclass(frozen=True)
class Supervision:
    max_backoff_s: float = 60.0
    stable_after_s: float = 600.0
    max_restarts: int = -1  # -1: no limit (tests bound it)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


Spawn = Callable[[list[str], Mapping[str, str]], "subprocess.Popen[bytes]"]


def _spawn(command: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    # a process group of its own: what the job started (its JVM, its Python workers) goes with it
    return subprocess.Popen(command, env=dict(env), start_new_session=True)


def _end_group(child: Any) -> None:
    """Whatever the ended job left running in its process group (an orphaned JVM holds its ports and memory)."""
    with contextlib.suppress(ProcessLookupError, PermissionError, AttributeError, TypeError):
        os.killpg(child.pid, signal.SIGKILL)


def supervise(job: str, command: list[str], checkpoint_dir: Path, settings: Supervision = Supervision(),
              spawn: Spawn = _spawn, sleep: Callable[[float], None] = time.sleep,
              env: Mapping[str, str] | None = None) -> int:
    """Run ``command`` (the job, once) until it finishes cleanly; its exit status, or 130 on Ctrl-C.

    The child gets ``NEXTWATCH_FLINK_CHECKPOINT_DIR`` (its own folder) and, after a restart,
    ``NEXTWATCH_FLINK_RESTORE_FROM`` (the newest completed checkpoint there).
    """
    if threading.current_thread() is threading.main_thread():  # SIGTERM (a service manager's stop) as Ctrl-C
        signal.signal(signal.SIGTERM, _interrupt)
    base = job_process_environment(os.environ if env is None else env)
    base["NEXTWATCH_FLINK_CHECKPOINT_DIR"] = str(checkpoint_dir)
    restore = base.get("NEXTWATCH_FLINK_RESTORE_FROM", "")
    backoff, restarts = 1.0, 0
    while True:
        child_env = {**base, "NEXTWATCH_FLINK_RESTORE_FROM": restore} if restore else base
        started = time.monotonic()
        child = spawn(command, child_env)
        try:
            code = child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
            _end_group(child)
            return 130
        _end_group(child)
        if code == 0:
            return 0
        if settings.max_restarts >= 0 and restarts >= settings.max_restarts:
            LOG.error("%s job exited with %s; no restarts left", job, code)
            return code
        if time.monotonic() - started >= settings.stable_after_s:
            backoff = 1.0
        checkpoint = latest_checkpoint(checkpoint_dir)
        restore = str(checkpoint) if checkpoint is not None else restore
        print(f"[jobs] {job} job exited with status {code}; restarting in {backoff:.0f} s from "
              f"{restore or 'the start (no checkpoint yet)'}", file=sys.stderr, flush=True)
        sleep(backoff)
        backoff = min(backoff * 2, settings.max_backoff_s)
        restarts += 1
