"""The ``homepage`` table: the rows job writes it, services read it with :class:`HomepageClient`.

Also ``profile_settings`` (each profile's maturity level), which the rows job reads.

One partition per user holds a homepage per context bucket (``daypart:device``, from
``jobs.context.context_bucket``), one CQL row per homepage row. A read is one
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

UPSERT_HOMEPAGE_ROW = """
INSERT INTO {keyspace}.homepage (user_id, context, row_position, row_id, row_title, title_ids, scores, artwork_ids,
    reasons, model_versions, generated_time, last_event_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_HOMEPAGES = "SELECT * FROM {keyspace}.homepage WHERE user_id = ?"
UPSERT_PROFILE_SETTINGS = ("INSERT INTO {keyspace}.profile_settings (user_id, maturity_limit, updated_time) "
                           "VALUES (?, ?, ?)")
SELECT_PROFILE_SETTINGS = "SELECT * FROM {keyspace}.profile_settings WHERE user_id = ?"

MAX_ROWS = 12  # positions written on every refresh: a homepage has at most this many rows


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

    STATEMENTS = {"homepage_row": UPSERT_HOMEPAGE_ROW, "get_homepages": SELECT_HOMEPAGES,
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
        """Every position up to ``MAX_ROWS`` in one single-partition batch: idempotent, never half a page."""
        if len(rows) > MAX_ROWS:
            raise ValueError(f"a homepage has at most {MAX_ROWS} rows, got {len(rows)}")
        at = datetime.fromtimestamp(generated_ms / 1000, tz=UTC)
        writes = []
        for position in range(MAX_ROWS):
            row = rows[position] if position < len(rows) else None
            items = row.items if row else ()
            writes.append(("homepage_row", (
                user_id, context, position, row.row_id if row else "", row.title if row else "",
                [i.title_id for i in items], [i.score for i in items], [i.artwork_id for i in items],
                [i.reason for i in items], model_versions, at, last_event_id)))
        self.write_together(writes)

    def homepages(self, user_id: str) -> dict[str, Homepage]:
        """Every bucket's homepage stored for the user (one partition read)."""
        by_context: dict[str, list[Any]] = {}
        for row in self.rows("get_homepages", user_id):
            by_context.setdefault(row.context, []).append(row)
        return {context: _homepage(user_id, context, context, found) for context, found in by_context.items()}


def _homepage(user_id: str, asked: str, served: str, found: list[Any]) -> Homepage:
    rows = tuple(HomepageRow(r.row_position, r.row_id, r.row_title,
                             tuple(HomepageItem(*item) for item in zip(r.title_ids or [], r.scores or [],
                                                                       r.artwork_ids or [], r.reasons or [],
                                                                       strict=True)))
                 for r in sorted(found, key=lambda r: r.row_position) if r.row_id)
    newest = max(found, key=lambda r: _ms(r.generated_time))
    return Homepage(user_id, asked, served, rows, _ms(newest.generated_time), newest.last_event_id or "",
                    dict(newest.model_versions or {}))


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
