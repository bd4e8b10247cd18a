"""Bounds on everything that enters or leaves the pipeline: one message, one field, one record.

No input the broker accepts may stop a job, and every Kafka sink here refuses a record over
1 MiB (``max.request.size``) by failing the job. So the producer SDK refuses what is over a
bound, naming the field; the jobs dead-letter a message over a bound (cut to the dead-letter
bound, with its length and digest); and a record a job would emit over ``record_bytes`` is
counted and dead-lettered in summary instead of sent.

Settings: ``[limits]`` in the config file, or ``NEXTWATCH_LIMITS_<FIELD>``.

>>> Limits().message_bytes, Limits().query_chars
(65536, 256)
>>> Limits.load(env={"NEXTWATCH_LIMITS_QUERY_CHARS": "0"}, file_data={})
Traceback (most recent call last):
...
connectors.errors.ConfigError: [limits] query_chars must be positive, got 0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from connectors.config import load_section
from connectors.errors import ConfigError

SINK_RECORD_BYTES = 1024 * 1024  # what the Kafka sinks accept (max.request.size); a record over it fails a job
ID_CHARS = 128  # every id: events, members, titles, playbacks, impressions, rows, artwork, devices


@dataclass(frozen=True)
class Limits:
    """The bounds; the defaults are what the contracts document (``docs/contracts.md``)."""

    message_bytes: int = 64 * 1024  # one event on the wire, as the SDK encodes it
    query_chars: int = 256  # a search query
    text_chars: int = 4096  # free text: a title's synopsis
    name_chars: int = 256  # a title, a genre, a tag, a cast member, an artwork theme
    list_items: int = 200  # any list in an event: items shown, search results, genres, cast, artwork
    token_chars: int = 4096  # a presentation token (the rows job writes them; apps echo them back)
    record_bytes: int = 256 * 1024  # any record a job emits
    dead_letter_bytes: int = 512 * 1024  # a dead-letter record, the original included (cut to fit)

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, file_data: Mapping[str, Any] | None = None) -> Limits:
        limits = load_section(cls, "limits", env, file_data)
        for f in fields(limits):
            if getattr(limits, f.name) <= 0:
                raise ConfigError(f"[limits] {f.name} must be positive, got {getattr(limits, f.name)}")
        for name in ("record_bytes", "dead_letter_bytes"):
            if getattr(limits, name) > SINK_RECORD_BYTES - 4096:
                raise ConfigError(f"[limits] {name} must leave room under the sinks' {SINK_RECORD_BYTES}-byte "
                                  f"limit (at most {SINK_RECORD_BYTES - 4096}), got {getattr(limits, name)}")
        return limits


DEFAULT_LIMITS = Limits()
