"""Topic administration and broker health, from the declarations in :mod:`connectors.topics`."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from connectors.config import KafkaConfig
from connectors.errors import BrokerUnavailableError
from connectors.topics import TOPICS, TopicSpec


def admin_client(kafka: KafkaConfig, quiet: bool = False) -> AdminClient:
    settings: dict[str, object] = {"socket.connection.setup.timeout.ms": 5000}
    if quiet:  # probing a broker that may not be up yet: we report the failure ourselves
        settings["log_level"] = 0
    return AdminClient(kafka.client_config(**settings))


def wait_for_broker(kafka: KafkaConfig, timeout_s: float | None = None) -> ClusterMetadata:
    """Metadata from the broker, or BrokerUnavailableError naming the address after ``timeout_s``."""
    timeout = kafka.connect_timeout_s if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout
    client = admin_client(kafka, quiet=True)
    last: Exception | None = None
    while True:
        remaining = deadline - time.monotonic()
        try:
            metadata = client.list_topics(timeout=max(0.5, min(remaining, 2.0)))
            if metadata.brokers:
                return metadata
        except KafkaException as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise BrokerUnavailableError(
                f"no Kafka broker answered at {kafka.bootstrap_servers} within {timeout:.0f}s"
                + (f" ({last})" if last else "")
                + "; is the stack up? (nextwatch stack status)"
            )
        time.sleep(0.2)


def ensure_topics(kafka: KafkaConfig, specs: Iterable[TopicSpec] = TOPICS,
                  timeout_s: float = 30.0) -> dict[str, str]:
    """Create missing topics; returns ``{topic: "created" | "exists"}``. Existing ones are left as they are."""
    wait_for_broker(kafka)
    client = admin_client(kafka)
    existing = set(client.list_topics(timeout=timeout_s).topics)
    result: dict[str, str] = {}
    wanted = []
    for spec in specs:
        name = spec.full_name(kafka)
        if name in existing:
            result[name] = "exists"
        else:
            wanted.append(NewTopic(name, num_partitions=spec.partition_count(kafka),
                                   replication_factor=kafka.replication_factor, config=dict(spec.config)))
    if wanted:
        futures = client.create_topics(wanted, operation_timeout=timeout_s, request_timeout=timeout_s)
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s)
                result[name] = "created"
            except KafkaException as exc:
                if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    result[name] = "exists"  # a concurrent creator won the race
                else:
                    raise
    _wait_for_leaders(client, list(result), timeout_s)
    return result


def _wait_for_leaders(client: AdminClient, names: list[str], timeout_s: float) -> None:
    """Topics are usable once every partition reports a leader."""
    deadline = time.monotonic() + timeout_s
    while True:
        topics = client.list_topics(timeout=timeout_s).topics
        pending = [n for n in names if n not in topics or topics[n].error is not None
                   or any(p.leader < 0 for p in topics[n].partitions.values())]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise BrokerUnavailableError(f"topics without leaders after {timeout_s:.0f}s: {pending}")
        time.sleep(0.1)


def delete_topics(kafka: KafkaConfig, names: Iterable[str], timeout_s: float = 30.0) -> None:
    client = admin_client(kafka)
    futures = client.delete_topics(list(names), operation_timeout=timeout_s)
    for future in futures.values():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
