"""``rejected_event``: a message a job could not apply, with the reason and the original bytes (dead-letter and
late-events topics)."""

from __future__ import annotations

import hashlib
from typing import Any

from jobs.context import now_ms


def content_id(original: bytes) -> str:
    """A digest of a message's bytes, the same in every process (Python's ``hash()`` is not).

    >>> content_id(b"not avro")
    '67ad917065c92c489215038a9a395b33'
    """
    return hashlib.blake2b(original, digest_size=16).hexdigest()


def rejection_record(kind: str, reason: str, job: str, original: bytes, source_topic: str = "",
                     event: Any = None, position: str = "") -> dict[str, Any]:
    """A RejectedEvent. Its id is stable: the same message rejected again (a restart re-reads it) gets the
    same id, from the event id, ``position`` (e.g. topic/partition/offset) or else the bytes' digest."""
    original_id = getattr(event, "event_id", None)
    return {
        "event_id": f"{job}:{kind}:{original_id or position or content_id(original)}",
        "kind": kind, "reason": reason, "job": job, "source_topic": source_topic,
        "original_event_id": original_id, "user_id": getattr(event, "user_id", None),
        "event_time_ms": getattr(event, "event_time_ms", None), "rejected_time_ms": now_ms(), "original": original,
    }
