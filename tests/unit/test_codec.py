"""The generated encoder against fastavro, round trips, and refusals that name the field."""

from __future__ import annotations

import io
from dataclasses import fields
from typing import Any

import fastavro
import pytest

from connectors.codec import MAGIC, EventCodec
from connectors.errors import DecodeError, InvalidEventError, UnknownSchemaError
from connectors.events import EVENT_TYPES, ShownItem
from tests.factories import ALL_FACTORIES, now_ms

INGEST = now_ms()

KINDS = sorted(ALL_FACTORIES)


@pytest.fixture(scope="module")
def codec() -> EventCodec:
    return EventCodec()


def as_record(event: Any) -> Any:
    if hasattr(event, "__dataclass_fields__"):
        return {f.name: as_record(getattr(event, f.name)) for f in fields(event)}
    if isinstance(event, list):
        return [as_record(x) for x in event]
    return event


@pytest.mark.parametrize("kind", KINDS)
def test_generated_bytes_equal_fastavro(codec: EventCodec, make_event: Any, kind: str) -> None:
    event = make_event(kind)
    data = codec.encode(event, ingest_ms=INGEST)
    writer = codec.writer(type(event).SUBJECT)
    expected = io.BytesIO()
    record = {**as_record(event), "schema_version": writer.version, "ingest_time_ms": INGEST}
    fastavro.schemaless_writer(expected, writer.parsed, record)
    assert data == MAGIC + writer.fingerprint + expected.getvalue()


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_to_typed_event(codec: EventCodec, make_event: Any, kind: str) -> None:
    event = make_event(kind)
    decoded = codec.decode_event(codec.encode(event, ingest_ms=INGEST))
    event.ingest_time_ms = INGEST
    assert decoded == event


def test_dict_records_take_schema_defaults(codec: EventCodec, make_event: Any) -> None:
    record = as_record(make_event("play"))
    del record["impression_id"], record["ingest_time_ms"]
    record["context"].pop("app_version")
    decoded = codec.decode(codec.encode_record("play_event", record, ingest_ms=INGEST))
    assert decoded.record["impression_id"] is None
    assert decoded.record["context"]["app_version"] == ""
    assert decoded.record["ingest_time_ms"] == INGEST


@pytest.mark.parametrize(
    ("kind", "overrides", "field", "words"),
    [
        ("play", {"position_ms": "12"}, "position_ms", "integer"),
        ("play", {"action": "REWIND"}, "action", "one of START"),
        ("play", {"duration_ms": 2**63}, "duration_ms", "range"),
        ("play", {"user_id": None}, "user_id", "string"),
        ("impression", {"items": [ShownItem("t1", 0), ShownItem(7, 1)]}, "items[1].title_id", "string"),  # type: ignore[arg-type]
        ("rating", {"stars": "five"}, "stars", "number"),
    ],
)
def test_type_errors_name_the_field(codec: EventCodec, make_event: Any, kind: str, overrides: dict[str, Any],
                                    field: str, words: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        codec.encode(make_event(kind, **overrides))
    assert caught.value.field == field
    assert words in str(caught.value)


def test_nested_record_type_error_names_the_path(codec: EventCodec, make_event: Any) -> None:
    event = make_event("play")
    event.context.utc_offset_minutes = "-300"
    with pytest.raises(InvalidEventError) as caught:
        codec.encode(event)
    assert caught.value.field == "context.utc_offset_minutes"


@pytest.mark.parametrize(
    ("kind", "overrides", "field"),
    [
        ("play", {"position_ms": 6_000_000}, "position_ms"),
        ("play", {"duration_ms": 0, "position_ms": 0}, "duration_ms"),
        ("play", {"event_time_ms": 1_700_000_000}, "event_time_ms"),  # seconds, not milliseconds
        ("play", {"event_time_ms": 4_102_444_800_000}, "event_time_ms"),  # year 2100
        ("play", {"title_id": ""}, "title_id"),
        ("search", {"query": "  "}, "query"),
        ("search", {"clicked_position": 5}, "clicked_position"),
        ("search", {"clicked_title_id": "t3"}, "clicked_title_id"),
        ("impression", {"items": []}, "items"),
        ("click", {"title_id": None}, "title_id"),
        ("scroll", {"scroll_depth": -1}, "scroll_depth"),
        ("rating", {"stars": 5.5}, "stars"),
        ("rating", {"kind": "THUMBS_UP", "stars": 4.0}, "stars"),
        ("catalog", {"runtime_minutes": 0}, "runtime_minutes"),
    ],
)
def test_rule_violations_name_the_field(codec: EventCodec, make_event: Any, kind: str,
                                        overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        codec.encode(make_event(kind, **overrides))
    assert caught.value.field == field


def test_bad_country_is_refused(codec: EventCodec, make_event: Any) -> None:
    event = make_event("rating")
    event.context.country = "usa"
    with pytest.raises(InvalidEventError, match=r"context\.country"):
        codec.encode(event)


def test_not_an_event_type(codec: EventCodec) -> None:
    with pytest.raises(InvalidEventError, match="not a nextwatch event type"):
        codec.encode({"user_id": "u1"})


def test_unknown_fingerprint_and_garbage_are_decode_errors(codec: EventCodec, make_event: Any) -> None:
    data = codec.encode(make_event("play"))
    with pytest.raises(UnknownSchemaError, match="fingerprint"):
        codec.decode(MAGIC + b"\x00" * 8 + data[10:])
    with pytest.raises(DecodeError, match="marker"):
        codec.decode(b"{\"json\": true}")
    with pytest.raises(DecodeError, match="trailing"):
        codec.decode(data + b"\x00")
    with pytest.raises(DecodeError, match="does not decode"):
        codec.decode(data[:20])


def test_every_typed_class_has_a_schema(codec: EventCodec) -> None:
    assert set(EVENT_TYPES) <= set(codec.store.subjects)


def test_derived_records_encode_from_dicts(codec: EventCodec) -> None:
    record = {"event_id": "j:INVALID:1", "kind": "INVALID", "reason": "bad", "job": "j", "rejected_time_ms": 1,
              "original": b"\x00"}
    decoded = codec.decode(codec.encode_record("rejected_event", record, ingest_ms=INGEST))
    assert decoded.record["original"] == b"\x00" and decoded.record["source_topic"] == ""
