"""What comes in: raw message bytes -> a typed user event, or the reason it cannot be one. Pure; no Flink.

Every job reads the user-event topics through this (in ``jobs.runtime.DecodeEvents``): Avro
single-object decoding of any published version, then the contract's rules.

>>> from connectors.codec import EventCodec
>>> event, rejection = decode_message(EventCodec(), b"not avro", 0)
>>> rejection
Rejection(code='undecodable', reason='not Avro single-object encoding (missing C3 01 marker)')
"""

from __future__ import annotations

from typing import Any, NamedTuple

from connectors.codec import EventCodec
from connectors.errors import DecodeError, InvalidEventError, UnknownSchemaError
from connectors.events import EVENT_TYPES, MEMBER_SUBJECTS, check_semantics, from_record
from connectors.limits import DEFAULT_LIMITS, Limits
from jobs.records.rejected_event import REASON_CHARS

TIMESTAMP_TOLERANCE_MS = 1_000


DECODE_REJECTIONS = ("empty_value", "oversize", "undecodable", "contract", "timestamp", "not_member_id")


class Rejection(NamedTuple):
    """Why a message is not applied: ``code`` as the jobs count it, ``reason`` for a person."""

    code: str  # one of DECODE_REJECTIONS
    reason: str

    def __str__(self) -> str:
        return self.reason


def decode_message(codec: EventCodec, value: bytes | None, now: int,
                   limits: Limits = DEFAULT_LIMITS) -> tuple[Any, Rejection | None]:
    """(typed event, None) or (None, why not). A message over ``limits.message_bytes`` is not decoded at all."""
    if not value:
        return None, Rejection("empty_value", "empty message value (a null value or zero bytes)")
    if len(value) > limits.message_bytes:
        return None, Rejection("oversize", f"message is {len(value)} bytes, over the limit of "
                                           f"{limits.message_bytes} ([limits] message_bytes)")
    try:
        decoded = codec.decode(value)
    except (DecodeError, UnknownSchemaError) as exc:
        return None, Rejection("undecodable", str(exc))
    if decoded.subject not in MEMBER_SUBJECTS:
        return None, Rejection("undecodable", f"{decoded.subject} is not a user event or an erasure request")
    cls = EVENT_TYPES[decoded.subject]
    try:
        event = from_record(cls, decoded.record)
        check_semantics(event, now, limits)
    except (InvalidEventError, TypeError) as exc:
        return None, Rejection("contract", str(exc)[:REASON_CHARS])
    return event, None


def timestamp_mismatch(kafka_timestamp_ms: int | None, event: Any) -> Rejection | None:
    """Why a message's Kafka timestamp cannot stand for its event's time (windows would misplace it), or None.

    The producer SDK sets one to the other; sources take event time from the Kafka timestamp.
    """
    if abs((kafka_timestamp_ms or 0) - event.event_time_ms) <= TIMESTAMP_TOLERANCE_MS:
        return None
    return Rejection("timestamp", f"Kafka message timestamp {kafka_timestamp_ms} is not event_time_ms "
                                  f"{event.event_time_ms}; produce with the nextwatch SDK or set it")
