"""Typed event objects an app team builds and hands to :class:`connectors.producer.EventProducer`.

Field names and types mirror ``schemas/<subject>.v<N>.avsc`` exactly (a unit test
holds them together); the schema files stay the source of truth for the wire format.
``schema_version`` is written by the encoder from the schema file and
``ingest_time_ms`` is stamped by the producer, so apps set neither.

Structural checks (types, enum symbols, required fields) happen while encoding;
:func:`check_semantics` adds the rules a schema cannot express (a position within
the duration, a two-letter country, ...). Both raise
:class:`~connectors.errors.InvalidEventError` naming the field.

>>> ctx = Context(device_id="tv-1", device_class="TV", country="US", utc_offset_minutes=-300)
>>> ev = PlayEvent(user_id="u1", event_time_ms=1_700_000_000_000, context=ctx, title_id="t9",
...                action="START", playback_id="p1", position_ms=0, duration_ms=5_400_000)
>>> check_semantics(ev)
>>> ev.position_ms = 6_000_000
>>> check_semantics(ev)
Traceback (most recent call last):
...
connectors.errors.InvalidEventError: invalid event: PlayEvent.position_ms: 6000000 is past duration_ms 5400000
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Literal, get_args, get_type_hints

from connectors.errors import InvalidEventError
from connectors.limits import DEFAULT_LIMITS, ID_CHARS, Limits
from connectors.state import Versioned, field_defaults, fields_from_dict

DeviceClass = Literal["TV", "MOBILE", "WEB", "UNKNOWN"]
PlayAction = Literal["START", "PROGRESS", "PAUSE", "STOP", "COMPLETE"]
BrowseAction = Literal["IMPRESSION", "CLICK", "SCROLL"]
RatingKind = Literal["THUMBS_UP", "THUMBS_DOWN", "STARS"]
MaturityRating = Literal["ALL", "SEVEN_PLUS", "THIRTEEN_PLUS", "SIXTEEN_PLUS", "EIGHTEEN_PLUS"]

# Timestamps outside [2001-09-09, now + 1 day] are refused: they are unit mistakes
# (seconds or microseconds) or broken clocks, and would poison event-time windows.
MIN_EVENT_TIME_MS = 1_000_000_000_000
MAX_CLOCK_SKEW_MS = 24 * 3600 * 1000
FIRST_RELEASE_YEAR = 1870  # before the first motion pictures
MAX_RUNTIME_MINUTES = 100_000  # a series' whole runtime fits; a number in seconds or milliseconds mostly does not


def new_event_id() -> str:
    return str(uuid.uuid4())


@dataclass(slots=True)
class Context:
    """Where the event happened: device and locale."""

    device_id: str
    device_class: DeviceClass
    country: str
    utc_offset_minutes: int
    app_version: str = ""


@dataclass(slots=True)
class PlayEvent:
    """A playback step; watch fraction = position_ms / duration_ms."""

    SUBJECT: ClassVar[str] = "play_event"
    user_id: str
    event_time_ms: int
    context: Context
    title_id: str
    action: PlayAction
    playback_id: str
    position_ms: int
    duration_ms: int
    impression_id: str | None = None
    event_id: str = field(default_factory=new_event_id)
    ingest_time_ms: int = 0

    @property
    def watch_fraction(self) -> float:
        return min(1.0, self.position_ms / self.duration_ms) if self.duration_ms > 0 else 0.0


@dataclass(slots=True)
class SearchEvent:
    """A query, the results shown and the one clicked, if any."""

    SUBJECT: ClassVar[str] = "search_event"
    user_id: str
    event_time_ms: int
    context: Context
    query: str
    result_title_ids: list[str] = field(default_factory=list)
    clicked_title_id: str | None = None
    clicked_position: int | None = None
    event_id: str = field(default_factory=new_event_id)
    ingest_time_ms: int = 0


@dataclass(slots=True)
class ShownItem:
    title_id: str
    position_in_row: int
    artwork_id: str | None = None


@dataclass(slots=True)
class BrowseEvent:
    """An impression of a row, a click on one of its items, or a scroll."""

    SUBJECT: ClassVar[str] = "browse_event"
    user_id: str
    event_time_ms: int
    context: Context
    action: BrowseAction
    impression_id: str
    page: str
    row_id: str | None = None
    row_position: int | None = None
    items: list[ShownItem] = field(default_factory=list)
    title_id: str | None = None
    position_in_row: int | None = None
    artwork_id: str | None = None
    scroll_depth: int | None = None
    presentation_token: str | None = None
    event_id: str = field(default_factory=new_event_id)
    ingest_time_ms: int = 0


@dataclass(slots=True)
class RatingEvent:
    """Thumbs up/down, or stars from 0.5 to 5."""

    SUBJECT: ClassVar[str] = "rating_event"
    user_id: str
    event_time_ms: int
    context: Context
    title_id: str
    kind: RatingKind
    stars: float | None = None
    event_id: str = field(default_factory=new_event_id)
    ingest_time_ms: int = 0


@dataclass(slots=True)
class CrewMember:
    name: str
    role: str


@dataclass(slots=True)
class Availability:
    available_from_ms: int
    countries: list[str] = field(default_factory=list)
    available_until_ms: int | None = None


@dataclass(slots=True)
class ArtworkVariant:
    artwork_id: str
    uri: str
    themes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CatalogItem(Versioned):
    """A full snapshot of one title's metadata; the newest ``updated_time_ms`` wins (kept in job state too)."""

    SUBJECT: ClassVar[str] = "catalog_item"
    title_id: str
    updated_time_ms: int
    title: str
    runtime_minutes: int
    maturity_rating: MaturityRating
    availability: Availability
    genres: list[str] = field(default_factory=list)
    sub_genres: list[str] = field(default_factory=list)
    cast: list[str] = field(default_factory=list)
    directors: list[str] = field(default_factory=list)
    crew: list[CrewMember] = field(default_factory=list)
    release_year: int | None = None
    tags: list[str] = field(default_factory=list)
    synopsis: str = ""
    artwork: list[ArtworkVariant] = field(default_factory=list)
    synthetic_fields: list[str] = field(default_factory=list)
    event_id: str = field(default_factory=new_event_id)
    ingest_time_ms: int = 0


# version 0: default pickling of a slots class, (None, {slot: value}), before it wrote a version
CatalogItem.MIGRATIONS = {0: fields_from_dict(
    ("title_id", "updated_time_ms", "title", "runtime_minutes", "maturity_rating", "availability", "genres",
     "sub_genres", "cast", "directors", "crew", "release_year", "tags", "synopsis", "artwork", "synthetic_fields",
     "event_id", "ingest_time_ms"), field_defaults(CatalogItem))}

@dataclass(slots=True)
class ErasureRequest:
    """Forget one member: every job drops their state and rows and applies nothing of theirs again."""

    SUBJECT: ClassVar[str] = "erasure_request"
    user_id: str
    event_time_ms: int
    reason: str = ""
    event_id: str = ""  # erase:<user_id>: one request per member
    ingest_time_ms: int = 0

    def __post_init__(self) -> None:
        self.event_id = self.event_id or f"erase:{self.user_id}"


UserEvent = PlayEvent | SearchEvent | BrowseEvent | RatingEvent
Event = PlayEvent | SearchEvent | BrowseEvent | RatingEvent | CatalogItem
EVENT_TYPES: dict[str, type[Any]] = {
    cls.SUBJECT: cls for cls in (PlayEvent, SearchEvent, BrowseEvent, RatingEvent, CatalogItem, ErasureRequest)
}
USER_EVENT_SUBJECTS = frozenset(cls.SUBJECT for cls in (PlayEvent, SearchEvent, BrowseEvent, RatingEvent))
# what the jobs' member-keyed path reads: the user events and the erasure requests
MEMBER_SUBJECTS = USER_EVENT_SUBJECTS | {ErasureRequest.SUBJECT}
# Subjects without a typed class (session_features, user_features, rejected_event) are records
# that jobs derive and write as dicts through EventCodec.encode_record.


# ---------------------------------------------------------------------------
# Semantic rules. Each check is one cheap boolean test on the hot path; only when
# it fails does the slow path work out which field is wrong and why.

_COUNTRIES = frozenset(a + b for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _fail(event: Any, field_name: str, problem: str) -> None:
    raise InvalidEventError(field_name, problem, type(event).__name__)


def _shown(value: Any, chars: int = 60) -> str:
    """``value`` as a reason shows it: cut, so that a reason stays short whatever the input."""
    text = repr(value)
    if len(text) <= chars:
        return text
    size = f", {len(value)} long" if isinstance(value, (str, bytes, list)) else ""
    return f"{text[:chars]}...{size}"


def _is_id(value: Any) -> bool:
    return type(value) is str and 0 < len(value) <= ID_CHARS


def _is_optional_id(value: Any) -> bool:
    return value is None or _is_id(value)


def _fits(value: Any, chars: int) -> bool:
    """A string of at most ``chars`` characters (or not a string: the encoder names type errors)."""
    return type(value) is not str or len(value) <= chars


def _at_least_zero(value: Any) -> bool:
    return type(value) is not int or value >= 0


def _explain_id(event: Any, name: str, value: Any) -> None:
    if not _is_id(value):
        _fail(event, name, f"must be a non-empty string of at most {ID_CHARS} characters, got {_shown(value)}")


def _explain_optional_id(event: Any, name: str, value: Any) -> None:
    if value is not None:
        _explain_id(event, name, value)


def _explain_text(event: Any, name: str, value: Any, chars: int) -> None:
    if not _fits(value, chars):
        _fail(event, name, f"is {len(value)} characters, over the limit of {chars}")


def _explain_list(event: Any, name: str, value: Any, items: int) -> None:
    if isinstance(value, list) and len(value) > items:
        _fail(event, name, f"has {len(value)} items, over the limit of {items}")


def _explain_at_least_zero(event: Any, name: str, value: Any) -> None:
    if not _at_least_zero(value):
        _fail(event, name, f"must be >= 0, got {value}")


def _explain_time(event: Any, name: str, value: Any, now_ms: int) -> None:
    if type(value) is not int:
        return  # the encoder names the type error
    if value < MIN_EVENT_TIME_MS:
        _fail(event, name, f"{value} is before 2001; epoch milliseconds expected")
    if value > now_ms + MAX_CLOCK_SKEW_MS:
        _fail(event, name, f"{value} is more than a day in the future")


def _time_ok(value: Any, now_ms: int) -> bool:
    return type(value) is not int or MIN_EVENT_TIME_MS <= value <= now_ms + MAX_CLOCK_SKEW_MS


def _check_user_event(event: Any, now_ms: int) -> None:
    ctx = event.context
    if (
        _is_id(event.event_id) and _is_id(event.user_id) and _time_ok(event.event_time_ms, now_ms)
        and (type(ctx) is not Context or (
            ctx.country in _COUNTRIES
            and (type(ctx.utc_offset_minutes) is not int or -720 <= ctx.utc_offset_minutes <= 840)
            and _fits(ctx.device_id, ID_CHARS) and _fits(ctx.app_version, ID_CHARS)))
    ):
        return
    _explain_id(event, "event_id", event.event_id)
    _explain_id(event, "user_id", event.user_id)
    _explain_time(event, "event_time_ms", event.event_time_ms, now_ms)
    if ctx.country not in _COUNTRIES:
        _fail(event, "context.country",
              f"must be an ISO 3166-1 alpha-2 code like 'US', got {_shown(ctx.country)}")
    _explain_text(event, "context.device_id", ctx.device_id, ID_CHARS)
    _explain_text(event, "context.app_version", ctx.app_version, ID_CHARS)
    _fail(event, "context.utc_offset_minutes", f"{ctx.utc_offset_minutes} is outside -720..840")


def _check_play(event: PlayEvent, now_ms: int, limits: Limits) -> None:
    _check_user_event(event, now_ms)
    pos, dur = event.position_ms, event.duration_ms
    if _is_id(event.title_id) and _is_id(event.playback_id) and _is_optional_id(event.impression_id) and (
        type(pos) is not int or type(dur) is not int or (0 <= pos <= dur and dur > 0)
    ):
        return
    _explain_id(event, "title_id", event.title_id)
    _explain_id(event, "playback_id", event.playback_id)
    _explain_optional_id(event, "impression_id", event.impression_id)
    if dur <= 0:
        _fail(event, "duration_ms", f"must be positive, got {dur}")
    if pos < 0:
        _fail(event, "position_ms", f"must be >= 0, got {pos}")
    _fail(event, "position_ms", f"{pos} is past duration_ms {dur}")


def _check_search(event: SearchEvent, now_ms: int, limits: Limits) -> None:
    _check_user_event(event, now_ms)
    if not (isinstance(event.query, str) and event.query.strip()):
        _fail(event, "query", "must not be empty")
    _explain_text(event, "query", event.query, limits.query_chars)
    results = event.result_title_ids
    _explain_list(event, "result_title_ids", results, limits.list_items)
    if isinstance(results, list) and not all(_is_id(title) for title in results):
        n = next(n for n, title in enumerate(results) if not _is_id(title))
        _explain_id(event, f"result_title_ids[{n}]", results[n])
    if event.clicked_position is not None or event.clicked_title_id is not None:
        pos = event.clicked_position
        if not (isinstance(pos, int) and isinstance(results, list) and 0 <= pos < len(results)):
            _fail(event, "clicked_position", f"{pos!r} is not the index of a shown result")
        elif event.clicked_title_id != results[pos]:
            _fail(event, "clicked_title_id",
                  f"{_shown(event.clicked_title_id)} is not the result shown at position {pos}")


def _check_browse(event: BrowseEvent, now_ms: int, limits: Limits) -> None:
    _check_user_event(event, now_ms)
    _explain_id(event, "impression_id", event.impression_id)
    items = event.items
    if not (
        _fits(event.page, ID_CHARS) and _is_optional_id(event.row_id) and _at_least_zero(event.row_position)
        and _is_optional_id(event.title_id) and _at_least_zero(event.position_in_row)
        and _is_optional_id(event.artwork_id) and _fits(event.presentation_token, limits.token_chars)
        and (not isinstance(items, list) or (len(items) <= limits.list_items and all(
            type(item) is not ShownItem or (_is_id(item.title_id) and _at_least_zero(item.position_in_row)
                                            and _is_optional_id(item.artwork_id)) for item in items)))
    ):
        _explain_text(event, "page", event.page, ID_CHARS)
        _explain_optional_id(event, "row_id", event.row_id)
        _explain_at_least_zero(event, "row_position", event.row_position)
        _explain_optional_id(event, "title_id", event.title_id)
        _explain_at_least_zero(event, "position_in_row", event.position_in_row)
        _explain_optional_id(event, "artwork_id", event.artwork_id)
        _explain_text(event, "presentation_token", event.presentation_token, limits.token_chars)
        _explain_list(event, "items", items, limits.list_items)
        for n, item in enumerate(items if isinstance(items, list) else ()):
            if type(item) is not ShownItem:
                continue
            _explain_id(event, f"items[{n}].title_id", item.title_id)
            _explain_at_least_zero(event, f"items[{n}].position_in_row", item.position_in_row)
            _explain_optional_id(event, f"items[{n}].artwork_id", item.artwork_id)
    action = event.action
    if action == "IMPRESSION":
        if not event.row_id:
            _fail(event, "row_id", "an IMPRESSION names its row")
        if not event.items:
            _fail(event, "items", "an IMPRESSION lists the items it showed")
    elif action == "CLICK":
        if not event.title_id:
            _fail(event, "title_id", "a CLICK names the clicked title")
        if event.position_in_row is None:
            _fail(event, "position_in_row", "a CLICK names the clicked position")
    elif action == "SCROLL" and not (isinstance(event.scroll_depth, int) and event.scroll_depth >= 0):
        _fail(event, "scroll_depth", f"a SCROLL has a scroll_depth >= 0, got {event.scroll_depth!r}")


def _check_rating(event: RatingEvent, now_ms: int, limits: Limits) -> None:
    _check_user_event(event, now_ms)
    _explain_id(event, "title_id", event.title_id)
    stars = event.stars
    if event.kind == "STARS":
        if not (isinstance(stars, (int, float)) and 0.5 <= stars <= 5.0 and (stars * 2) % 1 == 0):
            _fail(event, "stars", f"STARS ratings are 0.5 to 5.0 in steps of 0.5, got {stars!r}")
    elif stars is not None:
        _fail(event, "stars", f"only STARS ratings carry stars, not {event.kind}")


def _explain_names(item: Any, name: str, values: Any, limits: Limits) -> None:
    """A list of short texts (genres, cast, ...): at most ``list_items``, each at most ``name_chars``."""
    _explain_list(item, name, values, limits.list_items)
    for n, value in enumerate(values if isinstance(values, list) else ()):
        _explain_text(item, f"{name}[{n}]", value, limits.name_chars)


def _check_catalog(item: CatalogItem, now_ms: int, limits: Limits) -> None:
    _explain_id(item, "title_id", item.title_id)
    _explain_id(item, "event_id", item.event_id)
    _explain_time(item, "updated_time_ms", item.updated_time_ms, now_ms)
    if not (isinstance(item.title, str) and item.title.strip()):
        _fail(item, "title", "must not be empty")
    _explain_text(item, "title", item.title, limits.name_chars)
    _explain_text(item, "synopsis", item.synopsis, limits.text_chars)
    if isinstance(item.runtime_minutes, int) and not 0 < item.runtime_minutes <= MAX_RUNTIME_MINUTES:
        _fail(item, "runtime_minutes", f"must be 1 to {MAX_RUNTIME_MINUTES}, got {item.runtime_minutes}")
    year = item.release_year
    if isinstance(year, int) and not FIRST_RELEASE_YEAR <= year <= FIRST_RELEASE_YEAR + 1000:
        _fail(item, "release_year", f"must be {FIRST_RELEASE_YEAR} or later (and not a timestamp), got {year}")
    for name in ("genres", "sub_genres", "cast", "directors", "tags", "synthetic_fields"):
        _explain_names(item, name, getattr(item, name), limits)
    _explain_list(item, "crew", item.crew, limits.list_items)
    for n, member in enumerate(item.crew):
        if isinstance(member, CrewMember):
            _explain_text(item, f"crew[{n}].name", member.name, limits.name_chars)
            _explain_text(item, f"crew[{n}].role", member.role, limits.name_chars)
    avail = item.availability
    if isinstance(avail, Availability):
        _explain_list(item, "availability.countries", avail.countries, len(_COUNTRIES))
        for code in avail.countries:
            if code not in _COUNTRIES:
                _fail(item, "availability.countries", f"{_shown(code)} is not an ISO 3166-1 alpha-2 code")
        until = avail.available_until_ms
        if isinstance(until, int) and isinstance(avail.available_from_ms, int) and until <= avail.available_from_ms:
            _fail(item, "availability.available_until_ms", "must be after available_from_ms")
    _explain_list(item, "artwork", item.artwork, limits.list_items)
    for n, art in enumerate(item.artwork):
        if isinstance(art, ArtworkVariant):
            _explain_id(item, f"artwork[{n}].artwork_id", art.artwork_id)
            _explain_text(item, f"artwork[{n}].uri", art.uri, limits.text_chars)
            _explain_names(item, f"artwork[{n}].themes", art.themes, limits)
    ids = [a.artwork_id for a in item.artwork if isinstance(a, ArtworkVariant)]
    if len(ids) != len(set(ids)):
        _fail(item, "artwork", "artwork_id values must be unique within a title")


def _check_erasure(request: ErasureRequest, now_ms: int, limits: Limits) -> None:
    if _is_id(request.user_id) and _time_ok(request.event_time_ms, now_ms) and _fits(request.reason, 200) \
            and request.event_id == f"erase:{request.user_id}":
        return
    _explain_id(request, "user_id", request.user_id)
    _explain_time(request, "event_time_ms", request.event_time_ms, now_ms)
    _explain_text(request, "reason", request.reason, 200)
    _fail(request, "event_id", f"must be 'erase:' and the user_id, got {_shown(request.event_id)}")


_CHECKS: dict[type[Any], Any] = {
    PlayEvent: _check_play,
    SearchEvent: _check_search,
    BrowseEvent: _check_browse,
    RatingEvent: _check_rating,
    CatalogItem: _check_catalog,
    ErasureRequest: _check_erasure,
}


def check_semantics(event: Any, now_ms: int | None = None, limits: Limits = DEFAULT_LIMITS) -> None:
    """Rules beyond the schema's types, bounds included; raises InvalidEventError naming the field."""
    check = _CHECKS.get(type(event))
    if check is None:
        raise InvalidEventError("event", f"{type(event).__name__} is not a nextwatch event type")
    check(event, int(time.time() * 1000) if now_ms is None else now_ms, limits)


# ---------------------------------------------------------------------------
# Decoded records (dicts) back into typed objects


def from_record(cls: type[Any], record: dict[str, Any]) -> Any:
    """Build ``cls`` from a decoded Avro record, recursing into nested dataclasses.

    Keys the class does not know (written by a newer schema the reader did not
    resolve away) are ignored; ``schema_version`` is not part of the typed object.
    """
    kwargs: dict[str, Any] = {}
    for name, nested, is_list in _plan(cls):
        if name not in record:
            continue
        value = record[name]
        if nested is not None and value is not None:
            value = [from_record(nested, v) for v in value] if is_list else from_record(nested, value)
        kwargs[name] = value
    return cls(**kwargs)


_PLANS: dict[type[Any], list[tuple[str, type[Any] | None, bool]]] = {}


def _plan(cls: type[Any]) -> list[tuple[str, type[Any] | None, bool]]:
    """Per field: (name, nested dataclass or None, is a list of it); worked out once per class."""
    plan = _PLANS.get(cls)
    if plan is None:
        hints = get_type_hints(cls)
        plan = []
        for f in fields(cls):
            hint = hints[f.name]
            args = get_args(hint)
            nested = next((a for a in (hint, *args) if is_dataclass(a)), None)
            is_list = nested is not None and getattr(hint, "__origin__", None) is list
            plan.append((f.name, nested, is_list))  # type: ignore[arg-type]
        _PLANS[cls] = plan
    return plan
