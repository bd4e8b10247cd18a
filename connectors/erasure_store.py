"""The erasure ledger (``erased_members``) and the deletion of a member's rows from every member-keyed table.

The ledger holds digests (:func:`connectors.privacy.erasure_digest`), never member ids. It is written before
the request is published, so whatever reads it after a job has handled the request finds the member.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.cassandra_store import AsyncStore
from connectors.feature_store import FeatureStore
from connectors.homepage_store import HomepageStore
from connectors.model_store import ModelStore
from connectors.privacy import erasure_digest

INSERT_ERASED = "INSERT INTO {keyspace}.erased_members (digest, requested_time, reason) VALUES (?, ?, ?)"
SELECT_ERASED = "SELECT digest FROM {keyspace}.erased_members"
SELECT_ONE_ERASED = "SELECT digest FROM {keyspace}.erased_members WHERE digest = ?"

# every store with tables keyed by member, each deleting its own (the jobs' writers call the same methods)
MEMBER_STORES: tuple[type[Any], ...] = (FeatureStore, ModelStore, HomepageStore)


class ErasureStore(AsyncStore):
    """The ledger: written by ``nextwatch members erase``, read by the jobs and the API."""

    STATEMENTS = {"record": INSERT_ERASED, "all": SELECT_ERASED, "one": SELECT_ONE_ERASED}

    def record(self, member_id: str, requested_ms: int, reason: str = "") -> str:
        """Enter ``member_id`` (as its digest) and wait until Cassandra has it; the digest."""
        digest = erasure_digest(member_id)
        self.write("record", (digest, datetime.fromtimestamp(requested_ms / 1000, tz=UTC), reason))
        self.drain()
        return digest

    def digests(self) -> set[str]:
        """Every erased member's digest (read in pages; retried while Cassandra is away)."""
        return {row.digest for row in self.rows("all")}

    def erased(self, member_id: str) -> bool:
        return bool(self.rows("one", erasure_digest(member_id)))


def erase_member_rows(session: Any, keyspace: str, member_id: str) -> list[str]:
    """Delete ``member_id``'s rows from every member-keyed table, profile settings included; the tables."""
    tables: list[str] = []
    for store_type in MEMBER_STORES:
        store = store_type(session, keyspace)
        if store_type is HomepageStore:
            store.erase_member(member_id, settings=True)
        else:
            store.erase_member(member_id)
        store.drain()
        tables.extend(store_type.MEMBER_TABLES)
    return tables
