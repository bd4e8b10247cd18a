"""The stack that `nextwatch stack up` started: healthy, and a second `up` changes nothing."""

from __future__ import annotations

from infra import stack
from infra.process import RunRecord


def test_every_service_is_healthy() -> None:
    states = {s.name: s.state for s in stack.status()}
    assert states == {"kafka": "running", "cassandra": "running", "flink": "ready"}


def test_second_up_is_a_no_op() -> None:
    before = {name: RunRecord.load(name) for name in ("kafka", "cassandra")}
    result = stack.up()
    after = {name: RunRecord.load(name) for name in ("kafka", "cassandra")}
    assert before == after  # same processes, same ports
    assert result["cql_applied"] == []
    assert set(result["topics"].values()) == {"exists"}
