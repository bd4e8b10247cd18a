"""What the API answers, as JSON-ready dicts: stored rows, less what is not available now, named from the catalog.

Pure: no I/O. ``/v1`` only ever adds fields to these shapes (``docs/openapi.json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from connectors.events import CatalogItem
from connectors.homepage_store import RawRow, StoredPage
from connectors.serving import StoredPicks, StoredSimilar

COLD_START_CONTEXT = "cold-start"
COLD_START_ROW = "trending"


class Catalog(Protocol):
    """The catalog replica as the responses use it (``connectors.availability.CatalogReplica``)."""

    version: int

    def closed(self, title_id: str, now_ms: int) -> bool: ...

    def item(self, title_id: str) -> CatalogItem | None: ...

    def __len__(self) -> int: ...


def iso(ms: int) -> str | None:
    """Epoch milliseconds as an RFC 3339 UTC time; None for 0 (unknown).

    >>> iso(1_700_000_000_123), iso(0)
    ('2023-11-14T22:13:20.123Z', None)
    """
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class PageSource:
    """What a homepage answer is built from: one stored bucket's page (or the cold-start page), rows as stored."""

    context: str  # the bucket asked for
    served_context: str  # the bucket the rows were built for
    generated_ms: int
    last_event_id: str
    rows: list[RawRow]
    models: dict[str, str]


def pick_page(stored: dict[str, StoredPage], context: str) -> PageSource | None:
    """The page of ``context``, else the newest page of another bucket; only that one is parsed."""
    if not stored:
        return None
    page = stored.get(context) or max(stored.values(), key=lambda p: p.generated_ms)
    rows, models = page.raw()
    return PageSource(context, page.context, page.generated_ms, page.last_event_id, rows, models)


def cold_start_page(context: str, trending: list[str], now_ms: int, size: int = 40) -> PageSource:
    """A page for a member with none stored: the titles trending now, the same for everyone."""
    items: list[list[Any]] = [[title_id, 0.0, "", "trending now"] for title_id in trending[:size]]
    rows: list[RawRow] = [(COLD_START_ROW, "Trending Now", items, "")] if items else []
    return PageSource(context, COLD_START_CONTEXT, now_ms, "", rows, {})


def _artwork(item: CatalogItem | None, artwork_id: str) -> dict[str, Any]:
    if item is None:
        return {"artwork_id": artwork_id, "uri": None, "themes": []}
    chosen = next((a for a in item.artwork if a.artwork_id == artwork_id), None)
    if chosen is None and item.artwork and not artwork_id:
        chosen = item.artwork[0]
    if chosen is None:
        return {"artwork_id": artwork_id, "uri": None, "themes": []}
    return {"artwork_id": chosen.artwork_id, "uri": chosen.uri, "themes": list(chosen.themes)}


def _name(catalog: Catalog, title_id: str) -> str | None:
    item = catalog.item(title_id)
    return item.title if item is not None else None


class Names:
    """A title's name and an artwork variant's description from the catalog, remembered until the catalog changes
    (a page names up to 240 titles; the same titles recur on every page)."""

    def __init__(self, catalog: Catalog, entries: int = 200_000) -> None:
        self.catalog = catalog
        self.entries = entries
        self._version = -1
        self._known: dict[tuple[str, str], tuple[str | None, dict[str, Any]]] = {}

    def __call__(self, title_id: str, artwork_id: str) -> tuple[str | None, dict[str, Any]]:
        if self.catalog.version != self._version:
            self._known.clear()
            self._version = self.catalog.version
        found = self._known.get((title_id, artwork_id))
        if found is None:
            item = self.catalog.item(title_id)
            found = (item.title if item else None, _artwork(item, artwork_id))
            if len(self._known) < self.entries:
                self._known[(title_id, artwork_id)] = found
        return found


def homepage_body(member_id: str, page: PageSource, catalog: Catalog, names: Names, now_ms: int,
                  fallback: str | None = None) -> dict[str, Any]:
    """The answer: the page's rows less the titles not available at ``now_ms`` (and rows left empty), named."""
    closed = catalog.closed
    rows: list[dict[str, Any]] = []
    for row_id, title, items, token in page.rows:
        shown = []
        for title_id, score, artwork_id, reason in items:
            if closed(title_id, now_ms):
                continue
            name, artwork = names(title_id, artwork_id)
            shown.append({"title_id": title_id, "name": name, "score": score, "reason": reason, "artwork": artwork})
        if shown:
            rows.append({"position": len(rows), "row_id": row_id, "title": title, "presentation_token": token,
                         "items": shown})
    return {"member_id": member_id, "context": page.context, "served_context": page.served_context,
            "fallback": fallback, "generated_time": iso(page.generated_ms), "last_event_id": page.last_event_id,
            "model_versions": page.models, "rows": rows}


def picks_body(member_id: str, picks: StoredPicks, catalog: Catalog, now_ms: int, k: int) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for title_id, score, reason in zip(picks.title_ids, picks.scores, picks.reasons, strict=False):
        if len(items) == k:
            break
        if not catalog.closed(title_id, now_ms):
            items.append({"title_id": title_id, "name": _name(catalog, title_id), "score": score, "reason": reason})
    return {"member_id": member_id, "model_version": picks.model_version, "version": picks.version,
            "last_event_id": picks.last_event_id, "updated_time": iso(picks.updated_ms), "items": items}


def similar_body(title_id: str, similar: StoredSimilar | None, catalog: Catalog, now_ms: int,
                 k: int) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    if similar is not None:
        for other, score in zip(similar.title_ids, similar.scores, strict=False):
            if len(items) == k:
                break
            if not catalog.closed(other, now_ms):
                items.append({"title_id": other, "name": _name(catalog, other), "score": score})
    return {"title_id": title_id, "model_version": similar.model_version if similar else None,
            "updated_time": iso(similar.updated_ms) if similar else None, "items": items}


def title_body(item: CatalogItem) -> dict[str, Any]:
    window = item.availability
    return {"title_id": item.title_id, "name": item.title, "release_year": item.release_year,
            "runtime_minutes": item.runtime_minutes, "maturity_rating": item.maturity_rating,
            "genres": list(item.genres), "sub_genres": list(item.sub_genres), "cast": list(item.cast),
            "directors": list(item.directors), "tags": list(item.tags), "synopsis": item.synopsis,
            "artwork": [{"artwork_id": a.artwork_id, "uri": a.uri, "themes": list(a.themes)} for a in item.artwork],
            "availability": {"available_from": iso(window.available_from_ms),
                             "available_until": iso(window.available_until_ms or 0),
                             "countries": list(window.countries)},
            "updated_time": iso(item.updated_time_ms)}
