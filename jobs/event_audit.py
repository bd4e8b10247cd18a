"""Per-message logic of the event-audit job: what one raw message is. Pure; no Flink.

>>> from connectors.codec import EventCodec
>>> audit_message(EventCodec(), b"not avro")
('invalid', '', 'not Avro single-object encoding (missing C3 01 marker)')
"""

from __future__ import annotations

from connectors.codec import EventCodec
from connectors.errors import DecodeError, UnknownSchemaError

AuditRow = tuple[str, str, str]  # (subject or "invalid", event id, user or title id / reason)


def audit_message(codec: EventCodec, value: bytes) -> AuditRow:
    """Decode one message value into (subject, event_id, key entity), or ("invalid", "", reason)."""
    try:
        decoded = codec.decode(value)
    except (DecodeError, UnknownSchemaError) as exc:
        return ("invalid", "", str(exc))
    record = decoded.record
    entity = record.get("user_id") or record.get("title_id") or ""
    return (decoded.subject, str(record.get("event_id", "")), str(entity))
