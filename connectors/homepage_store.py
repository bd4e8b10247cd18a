"""The ``homepage`` table: the rows job writes it, services read it with :class:`HomepageClient`.

Also ``profile_settings`` (each profile's maturity level), which the rows job reads.

One partition per user holds a homepage per context bucket (``daypart:device``, from
``jobs.context.context_bucket``), one CQL row per homepage. A read is one
partition read: the requested bucket's rows, or, when the user has never been seen in
that bucket, the most recently generated homepage of another bucket (``served_context``
says which). No client-side cache: every call reads Cassandra.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from connectors.availability import AvailabilityView
from connectors.cassandra_store import AsyncStore

UPSERT_HOMEPAGE = """
INSERT INTO {keyspace}.homepage (user_id, context, page, generated_time, last_event_id) VALUES (?, ?, ?, ?, ?)
"""
SELECT_HOMEPAGES = "SELECT * FROM {keyspace}.homepage WHERE user_id = ?"
PAGE_FORMAT = 1  # the version of the page JSON (infra/cql/011_homepage_page.cql)
UPSERT_PROFILE_SETTINGS = ("INSERT INTO {keyspace}.profile_settings (user_id, maturity_limit, updated_time) "
                           "VALUES (?, ?, ?)")
SELECT_PROFILE_SETTINGS = "SELECT * FROM {keyspace}.profile_settings WHERE user_id = ?"
ERASE_HOMEPAGE = "DELETE FROM {keyspace}.homepage WHERE user_id = ?"
ERASE_PROFILE_SETTINGS = "DELETE FROM {keyspace}.profile_settings WHERE user_id = ?"

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
    token: str = ""  # the presentation token: impressions of this row echo it back (BrowseEvent)


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
                  "profile_settings": UPSERT_PROFILE_SETTINGS, "get_profile_settings": SELECT_PROFILE_SETTINGS,
                  "erase_homepage": ERASE_HOMEPAGE, "erase_profile_settings": ERASE_PROFILE_SETTINGS}
    MEMBER_TABLES = ("homepage", "profile_settings")

    def erase_member(self, user_id: str, settings: bool = False) -> None:
        """Delete the member's pages, and with ``settings`` their profile settings (the account service's rows:
        the rows job only reads them)."""
        self.write("erase_homepage", (user_id,))
        if settings:
            self.write("erase_profile_settings", (user_id,))

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
        self.write("homepage", (user_id, context, page_json(rows, model_versions),
                                datetime.fromtimestamp(generated_ms / 1000, tz=UTC), last_event_id))

    def homepages(self, user_id: str) -> dict[str, Homepage]:
        """Every bucket's homepage stored for the user (one partition read)."""
        return {row.context: homepage_from_row(user_id, row) for row in self.rows("get_homepages", user_id)}


def page_json(rows: Sequence[HomepageRow], model_versions: dict[str, str]) -> str:
    """The ``page`` column: every row of one homepage as compact JSON (format ``PAGE_FORMAT``)."""
    page = {"v": PAGE_FORMAT, "models": model_versions,
            "rows": [[r.row_id, r.title, [[i.title_id, i.score, i.artwork_id, i.reason] for i in r.items], r.token]
                     for r in rows]}
    return orjson.dumps(page).decode()


# one row of a page as stored: row_id, title, items as [title_id, score, artwork_id, reason], token
RawRow = tuple[str, str, list[list[Any]], str]


@dataclass(frozen=True)
class StoredPage:
    """One bucket's homepage as read, its rows parsed only when asked for (a read picks one bucket of several)."""

    context: str
    generated_ms: int
    last_event_id: str
    page: str | None = None  # the page column (None: written before it, in parallel lists, in ``legacy``)
    legacy: Any = None

    def raw(self) -> tuple[list[RawRow], dict[str, str]]:
        """(rows, model versions) straight from the stored JSON: no object per item."""
        if self.page is not None:
            page = orjson.loads(self.page)
            if page.get("v") != PAGE_FORMAT:
                raise ValueError(f"homepage in {self.context} has page format {page.get('v')}, this client reads "
                                 f"{PAGE_FORMAT}")
            return [(r[0], r[1], r[2], r[3] if len(r) > 3 else "") for r in page["rows"]], page.get("models") or {}
        rows = _rows_from_lists(self.legacy)
        return ([(r.row_id, r.title, [[i.title_id, i.score, i.artwork_id, i.reason] for i in r.items], r.token)
                 for r in rows], dict(self.legacy.model_versions or {}))


def homepage_from_row(user_id: str, row: Any) -> Homepage:
    """One CQL row of the ``homepage`` table as a :class:`Homepage` (either stored format)."""
    stored = StoredPage(row.context, _ms(row.generated_time), row.last_event_id or "", row.page,
                        None if row.page is not None else row)
    raw_rows, versions = stored.raw()
    rows = tuple(HomepageRow(position, row_id, title, tuple(HomepageItem(*item) for item in items), token)
                 for position, (row_id, title, items, token) in enumerate(raw_rows))
    return Homepage(user_id, row.context, row.context, rows, stored.generated_ms, stored.last_event_id, versions)


def _rows_from_lists(row: Any) -> tuple[HomepageRow, ...]:
    items = [HomepageItem(*item) for item in zip(row.title_ids or [], row.scores or [], row.artwork_ids or [],
                                                 row.reasons or [], strict=True)]
    rows, start = [], 0
    for position, (row_id, title, size) in enumerate(zip(row.row_ids or [], row.row_titles or [],
                                                         row.row_sizes or [], strict=True)):
        rows.append(HomepageRow(position, row_id, title, tuple(items[start:start + size])))
        start += size
    return tuple(rows)


class HomepageClient:
    """What downstream services call: ``homepage(user_id, context)``.

    ``context`` is the bucket of the member's request (``jobs.context.context_bucket(now,
    utc_offset_minutes, device_class)``, e.g. ``"evening:tv"``). ``None`` when nothing is
    stored for the user yet (serve the cold-start page for the context).

    With ``availability`` (a :class:`connectors.availability.CatalogAvailability`, which
    follows the catalog topic), items whose availability window has closed since the page
    was built are dropped at read time, and rows left empty with them: a withdrawn title
    leaves every homepage at once, not at each member's next rebuild.
    """

    def __init__(self, session: Any, keyspace: str, availability: AvailabilityView | None = None) -> None:
        self.store = HomepageStore(session, keyspace)
        self.availability = availability

    def homepage(self, user_id: str, context: str, now_ms: int | None = None) -> Homepage | None:
        stored = self.store.homepages(user_id)  # one partition read, every bucket
        if not stored:
            return None
        page = stored.get(context) or replace(max(stored.values(), key=lambda p: p.generated_ms), context=context)
        if self.availability is None:
            return page
        return without_closed(page, self.availability, int(time.time() * 1000) if now_ms is None else now_ms)


class ClosedTitles(Protocol):
    def closed(self, title_id: str, now_ms: int) -> bool: ...


def without_closed(page: Homepage, availability: ClosedTitles, now_ms: int) -> Homepage:
    """``page`` less the items whose window is closed at ``now_ms``, and less the rows they leave empty."""
    rows: list[HomepageRow] = []
    changed = False
    for row in page.rows:
        items = tuple(item for item in row.items if not availability.closed(item.title_id, now_ms))
        changed |= len(items) != len(row.items)
        if items:
            rows.append(HomepageRow(len(rows), row.row_id, row.title, items, row.token))
    return replace(page, rows=tuple(rows)) if changed else page
