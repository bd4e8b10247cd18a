"""``nextwatch jobs run`` restarts an exited job from its newest checkpoint, backing off; a clean end ends it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.supervise import Supervision, supervise


class _Child:
    def __init__(self, code: int) -> None:
        self.code = code

    def wait(self, timeout: float | None = None) -> int:
        return self.code


def test_an_exited_job_is_restarted_from_its_newest_checkpoint_with_backoff(tmp_path: Path) -> None:
    runs: list[dict[str, str]] = []
    codes = iter([137, 1, 0])

    def spawn(command: list[str], env: Mapping[str, str]) -> Any:
        runs.append(dict(env))
        if len(runs) == 1:  # the first run got as far as a checkpoint before it was killed
            (tmp_path / "job-a" / "chk-7").mkdir(parents=True)
            (tmp_path / "job-a" / "chk-7" / "_metadata").write_bytes(b"m")
        return _Child(next(codes))

    sleeps: list[float] = []
    assert supervise("features", ["job"], tmp_path, Supervision(max_backoff_s=60), spawn, sleeps.append, env={}) == 0
    assert [run.get("NEXTWATCH_FLINK_RESTORE_FROM") for run in runs] == [
        None, str(tmp_path / "job-a" / "chk-7"), str(tmp_path / "job-a" / "chk-7")]
    assert all(run["NEXTWATCH_FLINK_CHECKPOINT_DIR"] == str(tmp_path) for run in runs)
    assert sleeps == [1.0, 2.0]


def test_restarts_can_be_bounded_and_a_job_without_checkpoints_starts_over(tmp_path: Path) -> None:
    runs: list[dict[str, str]] = []

    def spawn(command: list[str], env: Mapping[str, str]) -> Any:
        runs.append(dict(env))
        return _Child(3)

    code = supervise("rows", ["job"], tmp_path, Supervision(max_restarts=2), spawn, lambda s: None, env={})
    assert code == 3 and len(runs) == 3
    assert all("NEXTWATCH_FLINK_RESTORE_FROM" not in run for run in runs)


def test_the_job_does_not_inherit_what_pyflink_set_in_the_parent(tmp_path: Path) -> None:
    """A process whose Python operators ran in it (a test's mini-cluster) has PyFlink's worker variables set;
    a job started from it must launch a gateway of its own."""
    seen: list[dict[str, str]] = []

    def spawn(command: list[str], env: Mapping[str, str]) -> Any:
        seen.append(dict(env))
        return _Child(0)

    parent = {"PYFLINK_GATEWAY_DISABLED": "true", "PYTHON_LOOPBACK_SERVER_ADDRESS": "localhost:1", "HOME": "/root",
              "JAVA_HOME": ""}
    supervise("features", ["job"], tmp_path, Supervision(), spawn, lambda s: None, env=parent)
    assert not {"PYFLINK_GATEWAY_DISABLED", "PYTHON_LOOPBACK_SERVER_ADDRESS", "JAVA_HOME"} & set(seen[0])
    assert seen[0]["HOME"] == "/root"
