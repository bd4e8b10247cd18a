"""``rejected_event``: a message a job could not apply (or applied and reports), with the reason and the original
bytes up to a bound (dead-letter and late-events topics)."""

from __future__ import annotations

import hashlib
from typing import Any

from connectors.limits import DEFAULT_LIMITS, Limits
from jobs.context import now_ms

REASON_CHARS = 1_024  # a reason names the field and shows a cut value: never the input whole
# what a record holds besides the original, at most: the reason (up to 4 bytes a character), ids of at most
# 128 characters, the job and topic names, numbers and Avro's lengths
RECORD_OVERHEAD_BYTES = 8 * 1024


def content_id(original: bytes) -> str:
    """A digest of a message's bytes, the same in every process (Python's ``hash()`` is not).

    >>> content_id(b"not avro")
    '67ad917065c92c489215038a9a395b33'
    """
    return hashlib.blake2b(original, digest_size=16).hexdigest()


def rejection_record(kind: str, reason: str, job: str, original: bytes, source_topic: str = "",
                     event: Any = None, position: str = "", reason_code: str = "",
                     limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """A RejectedEvent of at most ``limits.dead_letter_bytes`` encoded: the original is cut to fit, and
    keeps its whole length and digest.

    Its id is stable: the same message rejected again (a restart re-reads it) gets the same id, from
    ``position`` (e.g. topic/partition/offset, or a content digest), the event id or else the bytes' digest.

    >>> record = rejection_record("INVALID", "too big", "job", b"x" * 20_000, limits=Limits(dead_letter_bytes=10_000))
    >>> len(record["original"]), record["original_length"], record["original_cut"]
    (1808, 20000, True)
    """
    original_id = getattr(event, "event_id", None)
    digest = content_id(original)
    room = max(0, limits.dead_letter_bytes - RECORD_OVERHEAD_BYTES)
    return {
        "event_id": f"{job}:{kind}:{position or original_id or digest}",
        "kind": kind, "reason": reason[:REASON_CHARS], "reason_code": reason_code, "job": job,
        "source_topic": source_topic, "original_event_id": original_id, "user_id": getattr(event, "user_id", None),
        "event_time_ms": getattr(event, "event_time_ms", None), "rejected_time_ms": now_ms(),
        "original": original[:room], "original_length": len(original), "original_cut": len(original) > room,
        "original_digest": digest,
    }
