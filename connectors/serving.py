"""The reads behind ``nextwatch serve``: one partition each, asynchronous, answered or failed within a deadline.

The API must never hang on Cassandra: every read carries the driver's own timeout
(``[serve] read_timeout_s``) and an event-loop deadline a little past it, and
every failure for want of Cassandra becomes :class:`ServingUnavailableError`, which
the API answers as 503 with ``Retry-After``. The session is opened in the
background and opened again after it is lost, so a service started before
Cassandra, or one that outlives a Cassandra restart, serves once it is back
without being restarted itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from cassandra.cluster import ResponseFuture, Session
from cassandra.query import tuple_factory

from connectors.cassandra_store import TRANSIENT_ERRORS, CassandraStore, connect
from connectors.config import CassandraConfig
from connectors.errors import NextwatchError
from connectors.experiment_store import SELECT_METRICS, MetricRow
from connectors.homepage_store import StoredPage

LOG = logging.getLogger("nextwatch.serving")
# explicit columns, read as plain tuples: the driver's default row factory builds a namedtuple class for every
# result (about 70 us, an eighth of a read's client CPU)
HOMEPAGE_COLUMNS = ("context", "generated_time", "last_event_id", "page", "row_ids", "row_titles", "row_sizes",
                    "title_ids", "scores", "artwork_ids", "reasons", "model_versions")
SELECT_PAGES = f"SELECT {', '.join(HOMEPAGE_COLUMNS)} FROM {{keyspace}}.homepage WHERE user_id = ?"
SELECT_PICKS = ("SELECT title_ids, scores, reasons, model_version, version, last_event_id, updated_time "
                "FROM {keyspace}.top_picks WHERE user_id = ?")
SELECT_SIMILAR = ("SELECT neighbor_ids, neighbor_scores, model_version, updated_time FROM {keyspace}.similar_titles "
                  "WHERE title_id = ?")
SELECT_TRENDING_RANKS = "SELECT rank, title_id, window_end FROM {keyspace}.trending WHERE scope = ?"
SELECT_SOME_MEMBERS = "SELECT DISTINCT user_id FROM {keyspace}.homepage LIMIT ?"
SELECT_RELEASE = "SELECT release_version FROM system.local"
_UNAVAILABLE: tuple[type[BaseException], ...] = (TimeoutError, *TRANSIENT_ERRORS)


class ServingUnavailableError(NextwatchError):
    """Cassandra did not answer in time (or no session is open yet): try again shortly."""


@dataclass(frozen=True)
class StoredPicks:
    """A member's top picks as the learning job last wrote them, best first."""

    title_ids: tuple[str, ...]
    scores: tuple[float, ...]
    reasons: tuple[str, ...]
    model_version: str
    version: int
    last_event_id: str
    updated_ms: int


@dataclass(frozen=True)
class StoredSimilar:
    """A title's most similar titles (co-watching), best first."""

    title_ids: tuple[str, ...]
    scores: tuple[float, ...]
    model_version: str
    updated_ms: int


class ServingReads(ABC):
    """What the API reads; the unit tests drive the API through a fake of it."""

    @abstractmethod
    async def homepages(self, member_id: str) -> dict[str, StoredPage]:
        """Every context bucket's page stored for the member (empty when none)."""

    @abstractmethod
    async def top_picks(self, member_id: str) -> StoredPicks | None: ...

    @abstractmethod
    async def similar(self, title_id: str) -> StoredSimilar | None: ...

    @abstractmethod
    async def trending(self, scope: str = "global") -> list[str]:
        """The scope's titles in the newest trending window, most played first."""

    @abstractmethod
    async def experiment_rows(self, experiment: str) -> list[MetricRow]:
        """The metrics job's rows of ``experiment`` (its report's input)."""

    @abstractmethod
    async def some_members(self, n: int) -> list[str]:
        """Up to ``n`` members with a stored homepage (for the web page's "a random member")."""

    @abstractmethod
    async def ping(self) -> str:
        """Cassandra's release version, or :class:`ServingUnavailableError`."""


def _ms(value: datetime | None) -> int:
    return 0 if value is None else int(value.replace(tzinfo=UTC).timestamp() * 1000)


class _Statements(CassandraStore):
    STATEMENTS = {"homepages": SELECT_PAGES, "top_picks": SELECT_PICKS, "similar": SELECT_SIMILAR,
                  "trending": SELECT_TRENDING_RANKS, "some_members": SELECT_SOME_MEMBERS}


def stored_page(row: tuple[Any, ...]) -> StoredPage:
    """A row of :data:`SELECT_PAGES` (a plain tuple)."""
    context, generated, last_event_id, page = row[:4]
    legacy = None if page is not None else SimpleNamespace(**dict(zip(HOMEPAGE_COLUMNS, row, strict=True)))
    return StoredPage(context, _ms(generated), last_event_id or "", page, legacy)


class CircuitBreaker:
    """After ``failures`` reads in a row failed for want of Cassandra, further reads fail at once for ``open_s``;
    then one read probes: its success lets every read through again, its failure opens the breaker again.

    While Cassandra is away, requests are answered 503 in microseconds instead of each waiting out its
    timeout (which, at a thousand requests a second, would hold hundreds of connections).

    >>> now = [0.0]
    >>> breaker = CircuitBreaker(failures=2, open_s=1.0, clock=lambda: now[0])
    >>> breaker.allow(), breaker.failed(), breaker.allow(), breaker.failed(), breaker.allow()
    (True, None, True, None, False)
    >>> now[0] = 1.0
    >>> breaker.allow(), breaker.allow()  # one probe; the others still fail at once
    (True, False)
    >>> breaker.succeeded(); breaker.allow()
    True
    """

    def __init__(self, failures: int = 5, open_s: float = 1.0, clock: Any = time.monotonic) -> None:
        self.failures = failures
        self.open_s = open_s
        self.clock = clock
        self._in_a_row = 0
        self._open_until: float | None = None
        self._probing = False

    def allow(self) -> bool:
        if self._open_until is None:
            return True
        if self._probing or self.clock() < self._open_until:
            return False
        self._probing = True
        return True

    def failed(self) -> None:
        self._probing = False
        self._in_a_row += 1
        if self._in_a_row >= self.failures:
            self._open_until = self.clock() + self.open_s

    def succeeded(self) -> None:
        self._in_a_row = 0
        self._open_until = None
        self._probing = False


class CassandraServingReads(ServingReads):
    """:class:`ServingReads` over the project's tables, the session opened (and reopened) in the background."""

    def __init__(self, config: CassandraConfig, read_timeout_s: float = 0.5, reconnect_s: float = 1.0,
                 retry_after_s: float = 1.0) -> None:
        self.config = config
        self.read_timeout_s = read_timeout_s
        self.reconnect_s = reconnect_s
        self.errors = 0  # reads that failed for want of Cassandra
        self.breaker = CircuitBreaker(open_s=retry_after_s)
        self._statements: _Statements | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> CassandraServingReads:
        """Open the session in the background; reads until then are unavailable, not blocked."""
        self._thread = threading.Thread(target=self._open, name="cassandra-serving-connect", daemon=True)
        self._thread.start()
        return self

    def wait_open(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._statements is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self._statements is not None

    def _open(self) -> None:
        while not self._stop.is_set() and self._statements is None:
            try:
                session = connect(self.config, self.config.keyspace, timeout_s=self.reconnect_s)
                session.row_factory = tuple_factory
                self._statements = _Statements(session, self.config.keyspace)
            except Exception as exc:  # any failure to open is retried: the API answers 503 meanwhile
                LOG.warning("Cassandra session not open yet (%s); retrying", str(exc)[:200])
                self._stop.wait(self.reconnect_s)

    def close(self) -> None:
        self._stop.set()
        if self._statements is not None:
            self._statements.session.cluster.shutdown()

    async def _rows(self, name: str, *params: Any) -> list[Any]:
        statements = self._statements
        if statements is None:
            self.errors += 1
            raise ServingUnavailableError("Cassandra session not open yet")
        return await self._await(name, statements.session.execute_async, statements.statement(name), params)

    async def _await(self, name: str, execute: Any, *request: Any) -> list[Any]:
        if not self.breaker.allow():
            self.errors += 1
            raise ServingUnavailableError(f"Cassandra failed {self.breaker.failures} reads in a row; answering at "
                                          f"once for {self.breaker.open_s:g} s")
        try:
            rows = await asyncio.wait_for(_awaitable(execute(*request, timeout=self.read_timeout_s)),
                                          self.read_timeout_s + 0.2)
        except _UNAVAILABLE as exc:
            self.errors += 1
            self.breaker.failed()
            raise ServingUnavailableError(f"Cassandra did not answer {name} ({type(exc).__name__})") from exc
        self.breaker.succeeded()
        return rows

    async def homepages(self, member_id: str) -> dict[str, StoredPage]:
        return {row[0]: stored_page(row) for row in await self._rows("homepages", member_id)}

    async def top_picks(self, member_id: str) -> StoredPicks | None:
        rows = await self._rows("top_picks", member_id)
        if not rows:
            return None
        title_ids, scores, reasons, model_version, version, last_event_id, updated = rows[0]
        return StoredPicks(tuple(title_ids or ()), tuple(scores or ()), tuple(reasons or ()), model_version or "",
                           version or 0, last_event_id or "", _ms(updated))

    async def similar(self, title_id: str) -> StoredSimilar | None:
        rows = await self._rows("similar", title_id)
        if not rows:
            return None
        neighbor_ids, neighbor_scores, model_version, updated = rows[0]
        return StoredSimilar(tuple(neighbor_ids or ()), tuple(neighbor_scores or ()), model_version or "",
                             _ms(updated))

    async def trending(self, scope: str = "global") -> list[str]:
        rows = await self._rows("trending", scope)  # (rank, title_id, window_end)
        newest = max((r[2] for r in rows), default=None)
        return [title_id for _, title_id, _ in sorted(r for r in rows if r[2] == newest)]

    async def some_members(self, n: int) -> list[str]:
        return [row[0] for row in await self._rows("some_members", n)]

    async def experiment_rows(self, experiment: str) -> list[MetricRow]:
        statements = self._statements
        if statements is None:
            raise ServingUnavailableError("Cassandra session not open yet")
        # not prepared with the others (a rare page, and a keyspace without the table must not stop the API):
        # a plain statement, whose parameters the driver marks %s
        query = SELECT_METRICS.replace("{keyspace}", self.config.keyspace).replace("?", "%s")
        rows = await self._await("experiment_rows", statements.session.execute_async, query, (experiment,))
        return [MetricRow(row[0], row[1], row[2], row[3], tuple(float(v or 0.0) for v in row[4:])) for row in rows]

    async def ping(self) -> str:
        statements = self._statements
        if statements is None:
            raise ServingUnavailableError("Cassandra session not open yet")
        rows = await self._await("ping", statements.session.execute_async, SELECT_RELEASE)
        return str(rows[0][0]) if rows else "?"

    @property
    def session(self) -> Session | None:
        return None if self._statements is None else self._statements.session


def _awaitable(future: ResponseFuture) -> asyncio.Future[list[Any]]:
    """The driver's callback future as an asyncio one (its callbacks run on the driver's threads)."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[list[Any]] = loop.create_future()

    def settle(rows: Any) -> None:
        if not result.done():
            result.set_result(list(rows or ()))

    def fail(exc: BaseException) -> None:
        if not result.done():
            result.set_exception(exc)

    future.add_callbacks(lambda rows: loop.call_soon_threadsafe(settle, rows),
                         errback=lambda exc: loop.call_soon_threadsafe(fail, exc))
    return result
