"""Deduplication by event id and content: a redelivery is skipped, another event under a used id is applied. Pure.

Kafka hops here are at-least-once and apps retry, so every job remembers the ids it applied per
member. An id alone cannot tell a retry from a different event that reuses the id (a client bug,
or a malicious one): the first would hide the second. So each remembered id keeps a fingerprint
of its event's content, leaving out what a retry changes (``ingest_time_ms``; the schema version
is not part of a typed event). Same id, same content: a duplicate. Same id, other content: a
*conflict*, applied under an id qualified by its content (so that its own retries are duplicates
in turn) and reported by the caller.

>>> from connectors.events import Context, RatingEvent
>>> seen: dict[int, int] = {}
>>> first = RatingEvent("u1", 1_700_000_000_000, Context("d", "TV", "US", 0), "m1", "STARS", 4.0, event_id="e1")
>>> delivery = classify(seen, first.event_id, content_fingerprint(first)); delivery.kind
'first'
>>> remember(seen, delivery)
>>> retry = RatingEvent("u1", 1_700_000_000_000, Context("d", "TV", "US", 0), "m1", "STARS", 4.0, event_id="e1",
...                     ingest_time_ms=1_700_000_009_000)
>>> classify(seen, retry.event_id, content_fingerprint(retry)).kind
'duplicate'
>>> other = RatingEvent("u1", 1_700_000_000_000, Context("d", "TV", "US", 0), "m2", "STARS", 1.0, event_id="e1")
>>> conflict = classify(seen, other.event_id, content_fingerprint(other))
>>> conflict.kind, conflict.apply_id.startswith("e1#")
('conflict', True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, MutableMapping
from dataclasses import fields
from typing import Any, NamedTuple

UNKNOWN_CONTENT = 0  # an id remembered before fingerprints were kept: taken to match any content

_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def id_hash(event_id: str) -> int:
    """A stable 64-bit digest of an event id (Python's hash() changes between processes)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


def content_fingerprint(event: Any, bits: int = 64) -> int:
    """A stable ``bits``-bit digest of an event's content (a dataclass), its ingest time left out; never
    ``UNKNOWN_CONTENT``."""
    names = _FIELDS.get(type(event))
    if names is None:
        names = _FIELDS[type(event)] = tuple(f.name for f in fields(event) if f.name != "ingest_time_ms")
    text = repr(tuple(getattr(event, name) for name in names))
    return (int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> (64 - bits)) or 1


class Delivery(NamedTuple):
    """What an arriving event is to a member's memory of applied ids."""

    kind: str  # "first", "duplicate" or "conflict"
    key: int  # the id hash to remember it under (that of ``apply_id``)
    fingerprint: int
    apply_id: str  # the event id, or for a conflict the id qualified by its content

    @property
    def applies(self) -> bool:
        return self.kind != "duplicate"


def classify(seen: Mapping[int, int], event_id: str, fingerprint: int, key_bits: int = 64) -> Delivery:
    """``seen``: id hash (its first ``key_bits`` bits) -> content fingerprint of what was applied under that id."""
    key = id_hash(event_id) >> (64 - key_bits)
    known = seen.get(key)
    if known is None:
        return Delivery("first", key, fingerprint, event_id)
    if known in (fingerprint, UNKNOWN_CONTENT):
        return Delivery("duplicate", key, fingerprint, event_id)
    alias = f"{event_id}#{fingerprint:016x}"
    alias_key = id_hash(alias) >> (64 - key_bits)
    if alias_key in seen:
        return Delivery("duplicate", alias_key, fingerprint, alias)
    return Delivery("conflict", alias_key, fingerprint, alias)


def remember(seen: MutableMapping[int, int], delivery: Delivery) -> None:
    seen[delivery.key] = delivery.fingerprint
