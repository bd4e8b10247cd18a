"""Avro single-object encoding of nextwatch events.

Every message value is ``C3 01`` + the writer schema's 8-byte CRC-64-AVRO
fingerprint (little-endian) + the Avro binary body, as the Avro specification
defines single-object encoding. Any consumer can tell which schema wrote a message
and, through the :class:`~connectors.schemas.SchemaStore`, read it with its own
version.

>>> codec = EventCodec()
>>> from dataclasses import asdict, fields
>>> from connectors.events import Context, RatingEvent
>>> vars_of = lambda e: {f.name: getattr(e, f.name) for f in fields(e)}
>>> ev = RatingEvent(user_id="u1", event_time_ms=1_700_000_000_000, title_id="t1", kind="STARS", stars=4.0,
...                  context=Context("d1", "WEB", "DE", 60), event_id="e-1")
>>> data = codec.encode(ev, ingest_ms=1_700_000_000_500)
>>> data[:2]
b'\\xc3\\x01'
>>> decoded = codec.decode(data)
>>> decoded.subject, decoded.writer_version, decoded.record["stars"], decoded.record["ingest_time_ms"]
('rating_event', 1, 4.0, 1700000000500)
>>> codec.decode_event(data) == RatingEvent(**{**vars_of(ev), "ingest_time_ms": 1_700_000_000_500})
True
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

from fastavro import schemaless_reader

from connectors.avro_codegen import EncodeFn, compile_encoder
from connectors.errors import DecodeError, InvalidEventError, UnknownSchemaError
from connectors.events import EVENT_TYPES, check_semantics, from_record
from connectors.limits import DEFAULT_LIMITS, Limits
from connectors.registry import HEADER_SIZE as REGISTRY_HEADER_SIZE
from connectors.registry import MARKER as REGISTRY_MARKER
from connectors.registry import SINGLE_OBJECT, WireFormat
from connectors.schemas import SchemaStore, SchemaVersion

MAGIC = b"\xc3\x01"
HEADER_SIZE = 10


@dataclass(frozen=True)
class DecodedEvent:
    subject: str
    writer_version: int
    reader_version: int
    record: dict[str, Any]


def fingerprint_of_message(data: bytes) -> bytes:
    """The writer fingerprint of a single-object-encoded message."""
    if len(data) < HEADER_SIZE or data[:2] != MAGIC:
        raise DecodeError("not Avro single-object encoding (missing C3 01 marker)")
    return bytes(data[2:HEADER_SIZE])


class EventCodec:
    """Encodes typed events or dicts with each subject's writer version; decodes any published version.

    ``writer_versions`` pins the version written per subject (default: the latest),
    so a producer can keep writing v1 while readers move to v2. ``limits`` bound the events
    it encodes: each field, and the whole message (``message_bytes``). ``wire`` says whether messages are
    written in the schema registry's framing and whether it is read (:mod:`connectors.registry`).
    """

    def __init__(self, store: SchemaStore | None = None, writer_versions: dict[str, int] | None = None,
                 limits: Limits = DEFAULT_LIMITS, wire: WireFormat = SINGLE_OBJECT) -> None:
        self.store = store or (wire.registry.store if wire.registry else SchemaStore())
        self.limits = limits
        self.wire = wire
        pins = writer_versions or {}
        self._writers: dict[str, SchemaVersion] = {
            subject: self.store.get(subject, pins[subject]) if subject in pins else self.store.latest(subject)
            for subject in self.store.subjects
        }
        self._object_encoders: dict[type[Any], EncodeFn] = {}
        self._dict_encoders: dict[str, EncodeFn] = {}
        self._resolved: dict[tuple[bytes, int], tuple[SchemaVersion, SchemaVersion]] = {}

    def writer(self, subject: str) -> SchemaVersion:
        if subject not in self._writers:
            raise UnknownSchemaError(f"no schema for subject {subject!r}")
        return self._writers[subject]

    # -- encoding ----------------------------------------------------------
    def _compile(self, subject: str, dict_input: bool) -> EncodeFn:
        writer = self.writer(subject)
        registry = self.wire.registry if self.wire.write_registry else None
        return compile_encoder(
            writer.parsed,
            header=registry.header(writer) if registry else MAGIC + writer.fingerprint,
            overrides={"schema_version": str(writer.version), "ingest_time_ms": "ingest_ms"},
            dict_input=dict_input,
        )

    def encode(self, event: Any, ingest_ms: int | None = None) -> bytes:
        """Validate a typed event (types, then rules) and return its message bytes."""
        encoder = self._object_encoders.get(type(event))
        if encoder is None:
            subject = getattr(type(event), "SUBJECT", None)
            if subject not in EVENT_TYPES or EVENT_TYPES[subject] is not type(event):
                raise InvalidEventError("event", f"{type(event).__name__} is not a nextwatch event type")
            encoder = self._object_encoders[type(event)] = self._compile(subject, dict_input=False)
        now = int(time.time() * 1000) if ingest_ms is None else ingest_ms
        data = encoder(event, now)  # type errors first: the rules below assume well-typed fields
        check_semantics(event, now, self.limits)
        self._check_size(data)
        return data

    def _check_size(self, data: bytes) -> None:
        if len(data) > self.limits.message_bytes:
            raise InvalidEventError("event", f"encodes to {len(data)} bytes, over the message limit of "
                                             f"{self.limits.message_bytes} ([limits] message_bytes)")

    def encode_record(self, subject: str, record: dict[str, Any], ingest_ms: int | None = None) -> bytes:
        """Encode a plain dict for ``subject``; missing fields take their schema defaults."""
        encoder = self._dict_encoders.get(subject)
        if encoder is None:
            encoder = self._dict_encoders[subject] = self._compile(subject, dict_input=True)
        now = int(time.time() * 1000) if ingest_ms is None else ingest_ms
        data = encoder(record, now)  # structural errors first, with field paths
        if subject in EVENT_TYPES:
            check_semantics(from_record(EVENT_TYPES[subject], self.decode(data).record), now, self.limits)
            self._check_size(data)
        return data

    # -- decoding ----------------------------------------------------------
    def _schemas_for(self, fingerprint: bytes, reader_version: int | None) -> tuple[SchemaVersion, SchemaVersion]:
        key = (fingerprint, reader_version or 0)
        pair = self._resolved.get(key)
        if pair is None:
            writer = self._registry_writer(fingerprint) if len(fingerprint) == 4 else self.store.by_fingerprint(
                fingerprint)
            reader = (
                self.store.get(writer.subject, reader_version) if reader_version
                else self.store.latest(writer.subject)
            )
            pair = self._resolved[key] = (writer, reader)
        return pair

    def _registry_writer(self, schema_id: bytes) -> SchemaVersion:
        if self.wire.registry is None or not self.wire.read_registry:
            raise DecodeError("Confluent Schema Registry wire format (0x00 and a schema id), which [kafka] "
                              f"wire_format = {self.wire.name} does not read")
        return self.wire.registry.version_of(int.from_bytes(schema_id, "big"))

    def decode(self, data: bytes, reader_version: int | None = None) -> DecodedEvent:
        """Read a message with ``reader_version`` of its subject (default: the newest known)."""
        if data[:1] == REGISTRY_MARKER and len(data) >= REGISTRY_HEADER_SIZE:
            schema_key, header_size = bytes(data[1:REGISTRY_HEADER_SIZE]), REGISTRY_HEADER_SIZE
        else:
            schema_key, header_size = fingerprint_of_message(data), HEADER_SIZE
        writer, reader = self._schemas_for(schema_key, reader_version)
        buf = io.BytesIO(data)
        buf.seek(header_size)
        try:
            if writer is reader:
                record = schemaless_reader(buf, writer.parsed, None)
            else:
                record = schemaless_reader(buf, writer.parsed, reader.parsed)
        except Exception as exc:  # fastavro raises EOFError, ValueError, SchemaResolutionError, ...
            raise DecodeError(f"{writer.subject} v{writer.version}: body does not decode: {exc}") from exc
        if buf.tell() != len(data):
            raise DecodeError(f"{writer.subject} v{writer.version}: {len(data) - buf.tell()} trailing bytes")
        if not isinstance(record, dict):
            raise DecodeError(f"{writer.subject}: decoded to {type(record).__name__}, not a record")
        return DecodedEvent(writer.subject, writer.version, reader.version, record)

    def decode_event(self, data: bytes) -> Any:
        """Decode into the typed event class of the message's subject."""
        decoded = self.decode(data)
        return from_record(EVENT_TYPES[decoded.subject], decoded.record)
