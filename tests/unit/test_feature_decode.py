"""The feature job's decode step refuses what it cannot use, naming why."""

from __future__ import annotations

from typing import Any

from connectors.codec import MAGIC, EventCodec
from jobs.decoding import decode_message
from tests.factories import now_ms


def test_valid_events_decode_to_typed_objects(make_event: Any) -> None:
    codec = EventCodec()
    event = make_event("play")
    decoded, reason = decode_message(codec, codec.encode(event), now_ms())
    assert reason is None and decoded.event_id == event.event_id


def test_unreadable_input_has_a_reason(make_event: Any) -> None:
    codec = EventCodec()
    assert "marker" in str(decode_message(codec, b"junk", now_ms())[1])
    assert "fingerprint" in str(decode_message(codec, MAGIC + b"\x01" * 8, now_ms())[1])
    catalog = codec.encode(make_event("catalog"))
    assert "not a user event" in str(decode_message(codec, catalog, now_ms())[1])
    event = make_event("play")
    data = codec.encode(event)
    # rules are checked against the job's clock: an event from "the future" is refused
    assert "future" in str(decode_message(codec, data, event.event_time_ms - 3 * 86_400_000)[1])
