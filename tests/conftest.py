"""Shared fixtures. Integration fixtures read the stack's config (written by `nextwatch stack up`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from tests import factories

# The environment as the test session started: a test that runs Python operators in its own mini-cluster
# leaves PyFlink's worker variables in os.environ (not all of them known), which a job process started
# later must not inherit.
SESSION_START_ENVIRONMENT = dict(os.environ)


@pytest.fixture
def clean_environment() -> dict[str, str]:
    """A copy of the environment the session started with, for processes that run jobs of their own."""
    return dict(SESSION_START_ENVIRONMENT)


@pytest.fixture
def make_event() -> Callable[..., Any]:
    """make_event("play", position_ms=0) -> a valid event of that kind with the overrides applied."""

    def make(event_kind: str, /, **overrides: Any) -> Any:
        return factories.ALL_FACTORIES[event_kind](**overrides)

    return make


@pytest.fixture(scope="session")
def kafka_config() -> Any:
    from connectors.config import KafkaConfig
    from connectors.kafka_admin import wait_for_broker

    config = KafkaConfig.load()
    wait_for_broker(config, timeout_s=10)
    return config


@pytest.fixture
def isolated_kafka(kafka_config: Any) -> Iterator[Any]:
    """Kafka config with a topic prefix of its own and every declared topic created."""
    from connectors.kafka_admin import delete_topics, ensure_topics

    config = replace(kafka_config, topic_prefix=f"test-{uuid.uuid4().hex[:8]}.")
    created = ensure_topics(config)
    yield config
    delete_topics(config, created)


@pytest.fixture(scope="session")
def cassandra_config() -> Any:
    from connectors.cassandra_store import apply_schema
    from connectors.config import CassandraConfig

    config = replace(CassandraConfig.load(), keyspace="nextwatch_test")
    apply_schema(config)
    return config


@pytest.fixture
def cassandra_session(cassandra_config: Any) -> Iterator[Any]:
    from connectors.cassandra_store import connect

    session = connect(cassandra_config, cassandra_config.keyspace)
    yield session
    session.cluster.shutdown()
