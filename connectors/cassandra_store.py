"""Cassandra access: sessions, the project's schema, and the stores that read and write tables.

CQL lives in ``infra/cql/*.cql`` (schema, applied in file-name order) and as
constants beside the store that runs it; statements are prepared once per
session. Everything here runs on Cassandra 2.1 (protocol v3) and on 4.x/5.x:
no ``date``/``smallint``/``duration`` types, no ``SELECT JSON``, no
``PER PARTITION LIMIT`` or ``GROUP BY``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from abc import ABC
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cassandra import (
    CoordinationFailure,
    OperationTimedOut,
    ReadTimeout,
    Unavailable,
    WriteTimeout,
)
from cassandra.cluster import Cluster, NoHostAvailable, ResponseFuture, Session
from cassandra.connection import ConnectionException
from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from connectors.config import REPO_ROOT, CassandraConfig
from connectors.errors import ConfigError, NextwatchError

LOG = logging.getLogger("nextwatch.cassandra")
CQL_DIR = REPO_ROOT / "infra" / "cql"
# what a request may meet while Cassandra is away or overloaded: retried (every write here is idempotent)
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (OperationTimedOut, NoHostAvailable, Unavailable, WriteTimeout,
                                                 ReadTimeout, CoordinationFailure, ConnectionException)
_STATEMENT_END = re.compile(r";\s*(?:--[^\n]*)?$", re.MULTILINE)


class CassandraUnavailableError(NextwatchError, ConnectionError):
    """No Cassandra node answered within the configured timeout."""


def _option_value(raw: str) -> Any:
    """Cluster keyword options arrive as strings from env/TOML; give them their natural type."""
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def cluster_security(config: CassandraConfig) -> dict[str, Any]:
    """The ``Cluster`` arguments for credentials and TLS (none when the config sets neither)."""
    settings: dict[str, Any] = {}
    if config.username:
        from cassandra.auth import PlainTextAuthProvider

        settings["auth_provider"] = PlainTextAuthProvider(username=config.username, password=config.password)
    if config.ssl_ca_file:
        import ssl

        try:
            context = ssl.create_default_context(cafile=config.ssl_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"[cassandra] ssl_ca_file {config.ssl_ca_file}: {exc}") from exc
        context.check_hostname = config.ssl_verify_hostname
        settings["ssl_context"] = context
    return settings


def cluster_for(config: CassandraConfig) -> Cluster:
    """A Cluster from the config. After an outage the driver reconnects within 10 s (its own default
    backs off to 10 minutes between attempts, which would outlast a short outage by far)."""
    options = {k: _option_value(v) for k, v in config.options.items()}
    try:
        return Cluster(
            contact_points=config.contact_points,
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
            port=config.port,
            protocol_version=config.protocol_version,
            connect_timeout=config.connect_timeout_s,
            **{"reconnection_policy": ExponentialReconnectionPolicy(0.5, 10.0), **cluster_security(config),
               **options},
        )
    except TypeError as exc:
        raise ConfigError(f"[cassandra.options]: {exc}") from exc


def connect(config: CassandraConfig, keyspace: str | None = None, timeout_s: float | None = None) -> Session:
    """A session (optionally bound to ``keyspace``), retrying until ``timeout_s`` (default: connect timeout)."""
    timeout = config.connect_timeout_s if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        cluster = cluster_for(config)
        try:
            session = cluster.connect(keyspace)
            session.default_timeout = config.request_timeout_s
            return session
        except (NoHostAvailable, OperationTimedOut, OSError) as exc:
            last = exc
            cluster.shutdown()
        if time.monotonic() >= deadline:
            where = ", ".join(f"{host}:{config.port}" for host in config.contact_points)
            raise CassandraUnavailableError(
                f"no Cassandra node answered at {where} within {timeout:.0f}s ({last}); "
                "is the stack up? (nextwatch stack status)"
            )
        time.sleep(0.5)


def wait_for_cassandra(config: CassandraConfig, timeout_s: float) -> str:
    """Block until a node serves CQL; returns its release version."""
    session = connect(config, timeout_s=timeout_s)
    try:
        row = session.execute("SELECT release_version FROM system.local").one()
        return str(row.release_version)
    finally:
        session.cluster.shutdown()


def split_statements(cql: str) -> list[str]:
    """Statements of a .cql file: comment lines dropped, split at a ';' that ends a line."""
    body = "\n".join(line for line in cql.splitlines() if not line.strip().startswith("--"))
    parts = _STATEMENT_END.split(body)
    return [p.strip() for p in parts if p.strip()]


KEYSPACE_CQL = (
    "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
    "{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}"
)
MIGRATIONS_TABLE_CQL = (
    "CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations ("
    "file text PRIMARY KEY, sha256 text, applied_at timestamp)"
)


def apply_schema(config: CassandraConfig, cql_dir: Path = CQL_DIR) -> list[str]:
    """Create the keyspace and apply each ``*.cql`` once, in name order; returns the files applied now.

    A file already applied with different contents is an error: published CQL is
    never edited, a change is a new file (as with schemas).
    """
    session = connect(config)
    try:
        ks = config.keyspace
        session.execute(KEYSPACE_CQL.format(keyspace=ks, rf=config.replication_factor), timeout=60)
        session.execute(MIGRATIONS_TABLE_CQL.format(keyspace=ks), timeout=60)
        applied = {row.file: row.sha256 for row in session.execute(f"SELECT file, sha256 FROM {ks}.schema_migrations")}
        newly: list[str] = []
        for path in sorted(cql_dir.glob("*.cql")):
            text = path.read_text()
            digest = hashlib.sha256(text.encode()).hexdigest()
            if path.name in applied:
                if applied[path.name] != digest:
                    raise ConfigError(f"{path.name} changed after it was applied; add a new .cql file instead")
                continue
            for statement in split_statements(text):
                statement = statement.replace("{keyspace}", ks)
                if _column_exists(session, statement):
                    continue  # an earlier run added it and stopped before recording the file
                session.execute(statement, timeout=60)
            session.execute(
                f"INSERT INTO {ks}.schema_migrations (file, sha256, applied_at) VALUES (%s, %s, %s)",
                (path.name, digest, int(time.time() * 1000)),
            )
            newly.append(path.name)
        return newly
    finally:
        session.cluster.shutdown()


_ALTER_ADD = re.compile(r"^ALTER\s+TABLE\s+(\w+)\.(\w+)\s+ADD\s+(\w+)\s", re.IGNORECASE)


def _column_exists(session: Session, statement: str) -> bool:
    """Whether ``statement`` adds a column that the table has already (ALTER ... ADD is not idempotent)."""
    match = _ALTER_ADD.match(statement)
    if match is None:
        return False
    keyspace, table, column = match.groups()
    session.cluster.refresh_table_metadata(keyspace, table)
    meta = session.cluster.metadata.keyspaces[keyspace].tables.get(table)
    return meta is not None and column in meta.columns


class CassandraStore(ABC):  # noqa: B024 - a base with shared plumbing, no abstract methods yet
    """Base of every table store: one session, statements prepared once by name."""

    STATEMENTS: dict[str, str] = {}

    def __init__(self, session: Session, keyspace: str) -> None:
        self.session = session
        self.keyspace = keyspace
        self._prepared: dict[str, PreparedStatement] = {
            name: session.prepare(cql.replace("{keyspace}", keyspace)) for name, cql in self.STATEMENTS.items()
        }

    def statement(self, name: str) -> PreparedStatement:
        return self._prepared[name]

    def execute_many(self, name: str, rows: Iterable[tuple[Any, ...]], concurrency: int = 64) -> int:
        """Run one prepared statement over many parameter tuples concurrently; raises on the first failure."""
        from cassandra.concurrent import execute_concurrent_with_args

        results = execute_concurrent_with_args(self.session, self._prepared[name], list(rows),
                                               concurrency=concurrency, raise_on_first_error=True)
        return len(results)


class AsyncStore(CassandraStore):
    """A store whose writes are asynchronous, a bounded number in flight (the jobs' writers).

    A write that fails for want of Cassandra (:data:`TRANSIENT_ERRORS`) is sent again, backing off from
    0.1 s to 5 s, for up to ``retry_for_s``; only then is the error raised (and the task fails). Until
    then the operator waits in :meth:`drain`: back pressure, not a failed job. Every write here is an
    absolute row, so a write sent twice is harmless.
    """

    MAX_IN_FLIGHT = 128
    MAX_BACKOFF_S = 5.0

    def __init__(self, session: Any, keyspace: str, retry_for_s: float = 300.0) -> None:
        super().__init__(session, keyspace)
        self.retry_for_s = retry_for_s
        self.retries = 0
        self._in_flight: list[tuple[ResponseFuture, Any, tuple[Any, ...] | None]] = []

    def _send(self, request: Any, params: tuple[Any, ...] | None) -> None:
        self._in_flight.append((self.session.execute_async(request, params), request, params))
        if len(self._in_flight) >= self.MAX_IN_FLIGHT:
            self.drain()

    def write(self, statement: str, params: tuple[Any, ...]) -> None:
        """Queue one write; blocks (retrying, then raising) once MAX_IN_FLIGHT are outstanding."""
        self._send(self.statement(statement), params)

    def write_together(self, writes: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Several writes of one key (e.g. a user's profile and continue-watching rows) in one request.

        An UNLOGGED batch: no atomicity across tables is promised, it only saves
        round trips and client work (each request costs the Python driver ~0.1 ms).
        """
        if len(writes) == 1:
            self.write(*writes[0])
            return
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for statement, params in writes:
            batch.add(self.statement(statement), params)
        self._send(batch, None)

    def drain(self) -> int:
        """Wait for every queued write, sending again what failed for want of Cassandra; raises what cannot be
        written (a transient error past ``retry_for_s``, or any other)."""
        pending, self._in_flight = self._in_flight, []
        for future, request, params in pending:
            self._settle(future, request, params)
        return len(pending)

    def _settle(self, future: ResponseFuture, request: Any, params: tuple[Any, ...] | None) -> Any:
        """The request's result, sending it again while it fails for want of Cassandra (up to ``retry_for_s``)."""
        deadline, delay = 0.0, 0.1
        while True:
            try:
                return future.result()
            except TRANSIENT_ERRORS as exc:
                now = time.monotonic()
                deadline = deadline or now + self.retry_for_s
                if now >= deadline:
                    raise
                self.retries += 1
                if self.retries == 1 or self.retries % 100 == 0:
                    LOG.warning("Cassandra request failed (%s: %s); retry %d, for up to %.0f s more",
                                type(exc).__name__, str(exc)[:200], self.retries, deadline - now)
                time.sleep(delay)
                delay = min(delay * 2, self.MAX_BACKOFF_S)
                future = self.session.execute_async(request, params)

    def rows(self, statement: str, *params: Any) -> list[Any]:
        """A read, retried as writes are while Cassandra is away (up to ``retry_for_s``)."""
        request = self.statement(statement)
        return list(self._settle(self.session.execute_async(request, params), request, params))

    def write_all(self, statement: str, rows: Iterable[tuple[Any, ...]]) -> None:
        for params in rows:
            self.write(statement, params)
        self.drain()
