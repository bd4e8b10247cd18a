"""Errors the connectors raise; each names what is wrong so a caller can act on it."""

from __future__ import annotations


class NextwatchError(Exception):
    """Base of every error raised by nextwatch's connectors."""


class InvalidEventError(NextwatchError, ValueError):
    """An event was refused before anything was sent. ``field`` is its dotted path."""

    def __init__(self, field: str, problem: str, event_type: str = "") -> None:
        self.field = field
        self.problem = problem
        self.event_type = event_type
        where = f"{event_type}.{field}" if event_type else field
        super().__init__(f"invalid event: {where}: {problem}")


class SchemaStoreError(NextwatchError):
    """The schema folder is missing, malformed or inconsistent."""


class UnknownSchemaError(NextwatchError, LookupError):
    """A subject, version or fingerprint that no published schema has."""


class DecodeError(NextwatchError, ValueError):
    """Bytes that are not a single-object-encoded record of a published schema."""


class BrokerUnavailableError(NextwatchError, ConnectionError):
    """The Kafka broker did not answer within the configured timeout."""


class DeliveryError(NextwatchError):
    """The broker refused or failed to store one or more messages."""

    def __init__(self, failures: list[tuple[str, bytes | None, str]]) -> None:
        self.failures = failures  # (topic, key, error)
        first = failures[0]
        super().__init__(
            f"{len(failures)} message(s) not delivered; first: topic {first[0]} key {first[1]!r}: {first[2]}"
        )


class ConfigError(NextwatchError, ValueError):
    """A configuration value is missing or malformed."""


class JobControlError(NextwatchError, RuntimeError):
    """A job could not be stopped, started or upgraded on a Flink cluster."""
