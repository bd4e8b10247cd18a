"""What comes in: raw message bytes -> a typed user event, or the reason it cannot be one. Pure; no Flink.

Every job reads the user-event topics through this (in ``jobs.runtime.DecodeEvents``): Avro
single-object decoding of any published version, then the contract's rules.

>>> from connectors.codec import EventCodec
>>> decode_message(EventCodec(), b"not avro", 0)
(None, 'not Avro single-object encoding (missing C3 01 marker)')
"""

from __future__ import annotations

from typing import Any

from connectors.codec import EventCodec
from connectors.errors import DecodeError, InvalidEventError, UnknownSchemaError
from connectors.events import EVENT_TYPES, USER_EVENT_SUBJECTS, check_semantics, from_record

TIMESTAMP_TOLERANCE_MS = 1_000


def decode_message(codec: EventCodec, value: bytes, now: int) -> tuple[Any, str | None]:
    """(typed event, None) or (None, reason)."""
    try:
        decoded = codec.decode(value)
    except (DecodeError, UnknownSchemaError) as exc:
        return None, str(exc)
    if decoded.subject not in USER_EVENT_SUBJECTS:
        return None, f"{decoded.subject} is not a user event"
    cls = EVENT_TYPES[decoded.subject]
    try:
        event = from_record(cls, decoded.record)
        check_semantics(event, now)
    except (InvalidEventError, TypeError) as exc:
        return None, str(exc)
    return event, None


def timestamp_mismatch(kafka_timestamp_ms: int | None, event: Any) -> str | None:
    """Why a message's Kafka timestamp cannot stand for its event's time (windows would misplace it), or None.

    The producer SDK sets one to the other; sources take event time from the Kafka timestamp.
    """
    if abs((kafka_timestamp_ms or 0) - event.event_time_ms) <= TIMESTAMP_TOLERANCE_MS:
        return None
    return (f"Kafka message timestamp {kafka_timestamp_ms} is not event_time_ms {event.event_time_ms}; "
            "produce with the nextwatch SDK or set it")
