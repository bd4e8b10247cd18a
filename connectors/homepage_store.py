"""The ``homepage`` table: the rows job writes it, services read it with :class:`HomepageClient`.

Also ``profile_settings`` (each profile's maturity level), which the rows job reads.

One partition per user holds a homepage per context bucket (``daypart:device``, from
``jobs.context.context_bucket``), one CQL row per homepage. A read is one
partition read: the requested bucket's rows, or, when the user has never been seen in
that bucket, the most recently generated homepage of another bucket (``served_context``
says which). No client-side cache: every call reads Cassandra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from connectors.cassandra_store import AsyncStore

UPSERT_HOMEPAGE = """
INSERT INTO {keyspace}.homepage (user_id, context, row_ids, row_titles, row_sizes, title_ids, scores, artwork_ids,
    reasons, model_versions, generated_time, last_event_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_HOMEPAGES = "SELECT * FROM {keyspace}.homepage WHERE user_id = ?"
UPSERT_PROFILE_SETTINGS = ("INSERT INTO {keyspace}.profile_settings (user_id, maturity_limit, updated_time) "
                           "VALUES (?, ?, ?)")
SELECT_PROFILE_SETTINGS = "SELECT * FROM {keyspace}.profile_settings WHERE user_id = ?"

MAX_ROWS = 12  # a homepage has at most this many rows


@dataclass(frozen=True)
class HomepageItem:
    title_id: str
    score: float
    artwork_id: str
    reason: str


@dataclass(frozen=True)
class HomepageRow:
    position: int
    row_id: str  # continue_watching, top_picks, because_you_watched:<title_id>, trending, genre:<name>, ...
    title: str  # as displayed, e.g. "Because You Watched Alien"
    items: tuple[HomepageItem, ...]


@dataclass(frozen=True)
class Homepage:
    user_id: str
    context: str  # the bucket asked for
    served_context: str  # the bucket these rows were generated for (differs only on a fallback)
    rows: tuple[HomepageRow, ...]
    generated_ms: int
    last_event_id: str  # the last event the homepage reflects
    model_versions: dict[str, str] = field(default_factory=dict)


def _ms(value: datetime | None) -> int:
    return 0 if value is None else int(value.replace(tzinfo=UTC).timestamp() * 1000)


class HomepageStore(AsyncStore):
    """Writes of whole homepages (the rows job) and reads of them."""

    STATEMENTS = {"homepage": UPSERT_HOMEPAGE, "get_homepages": SELECT_HOMEPAGES,
                  "profile_settings": UPSERT_PROFILE_SETTINGS, "get_profile_settings": SELECT_PROFILE_SETTINGS}

    def maturity_limit(self, user_id: str, default: str = "EIGHTEEN_PLUS") -> str:
        """The profile's maturity level (``profile_settings``), ``default`` when none is set."""
        rows = self.rows("get_profile_settings", user_id)
        return rows[0].maturity_limit if rows and rows[0].maturity_limit else default

    def set_maturity_limit(self, user_id: str, level: str, now_ms: int) -> None:
        self.write("profile_settings", (user_id, level, datetime.fromtimestamp(now_ms / 1000, tz=UTC)))
        self.drain()

    def write_homepage(self, user_id: str, context: str, rows: Sequence[HomepageRow], model_versions: dict[str, str],
                       generated_ms: int, last_event_id: str) -> None:
        """The whole page of one bucket in one CQL row: idempotent, never half a page, nothing stale left."""
        if len(rows) > MAX_ROWS:
            raise ValueError(f"a homepage has at most {MAX_ROWS} rows, got {len(rows)}")
        items = [item for row in rows for item in row.items]
        self.write("homepage", (
            user_id, context, [r.row_id for r in rows], [r.title for r in rows], [len(r.items) for r in rows],
            [i.title_id for i in items], [i.score for i in items], [i.artwork_id for i in items],
            [i.reason for i in items], model_versions, datetime.fromtimestamp(generated_ms / 1000, tz=UTC),
            last_event_id))

    def homepages(self, user_id: str) -> dict[str, Homepage]:
        """Every bucket's homepage stored for the user (one partition read)."""
        return {row.context: _homepage(user_id, row) for row in self.rows("get_homepages", user_id)}


def _homepage(user_id: str, row: Any) -> Homepage:
    items = [HomepageItem(*item) for item in zip(row.title_ids or [], row.scores or [], row.artwork_ids or [],
                                                 row.reasons or [], strict=True)]
    rows, start = [], 0
    for position, (row_id, title, size) in enumerate(zip(row.row_ids or [], row.row_titles or [],
                                                         row.row_sizes or [], strict=True)):
        rows.append(HomepageRow(position, row_id, title, tuple(items[start:start + size])))
        start += size
    return Homepage(user_id, row.context, row.context, tuple(rows), _ms(row.generated_time), row.last_event_id or "",
                    dict(row.model_versions or {}))


class HomepageClient:
    """What downstream services call: ``homepage(user_id, context)``.

    ``context`` is the bucket of the member's request (``jobs.context.context_bucket(now,
    utc_offset_minutes, device_class)``, e.g. ``"evening:tv"``). ``None`` when nothing is
    stored for the user yet (serve the cold-start page for the context).
    """

    def __init__(self, session: Any, keyspace: str) -> None:
        self.store = HomepageStore(session, keyspace)

    def homepage(self, user_id: str, context: str) -> Homepage | None:
        stored = self.store.homepages(user_id)  # one partition read, every bucket
        if context in stored:
            return stored[context]
        if not stored:
            return None
        return replace(max(stored.values(), key=lambda page: page.generated_ms), context=context)
