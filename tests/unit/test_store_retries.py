"""The jobs' writers wait out an outage: a write that fails for want of Cassandra is sent again, with backoff, up
to a bound; anything else fails at once. No Cassandra here: a session that fails on cue."""

from __future__ import annotations

from typing import Any

import pytest
from cassandra import InvalidRequest
from cassandra.cluster import NoHostAvailable
from cassandra.query import SimpleStatement

from connectors.cassandra_store import AsyncStore


class _Future:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def result(self) -> list[str]:
        if self.error is not None:
            raise self.error
        return ["a row"]


class _FlakySession:
    """Fails the first ``failures`` requests with ``error``, then accepts everything."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error = failures, error
        self.sent: list[tuple[Any, Any]] = []

    def prepare(self, cql: str) -> SimpleStatement:
        return SimpleStatement(cql)

    def execute_async(self, request: Any, params: Any = None) -> _Future:
        self.sent.append((request, params))
        if self.failures > 0:
            self.failures -= 1
            return _Future(self.error)
        return _Future(None)


class _Store(AsyncStore):
    STATEMENTS = {"put": "INSERT INTO {keyspace}.t (k, v) VALUES (%s, %s)"}
    MAX_BACKOFF_S = 0.01


def test_a_write_is_sent_again_until_cassandra_is_back() -> None:
    session = _FlakySession(5, NoHostAvailable("all down", {}))
    store = _Store(session, "ks", retry_for_s=60)
    store.write("put", ("k1", 1))
    store.write_together([("put", ("k2", 2)), ("put", ("k3", 3))])
    assert store.drain() == 2
    assert store.retries == 5
    # the batch went again whole, and the single write with its parameters
    assert [params for _, params in session.sent].count(("k1", 1)) >= 2


def test_a_write_that_cannot_succeed_fails_at_once_and_an_outage_past_the_bound_fails() -> None:
    store = _Store(_FlakySession(1, InvalidRequest("no such table")), "ks", retry_for_s=60)
    store.write("put", ("k1", 1))
    with pytest.raises(InvalidRequest):
        store.drain()
    assert store.retries == 0
    forever = _Store(_FlakySession(10**9, NoHostAvailable("all down", {})), "ks", retry_for_s=0.05)
    forever.write("put", ("k1", 1))
    with pytest.raises(NoHostAvailable):
        forever.drain()
    assert forever.retries >= 1


def test_a_read_is_retried_too() -> None:
    session = _FlakySession(3, NoHostAvailable("all down", {}))
    assert _Store(session, "ks", retry_for_s=60).rows("put", "k1", 1) == ["a row"]
    assert len(session.sent) == 4
