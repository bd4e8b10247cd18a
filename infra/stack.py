"""`nextwatch stack up|down|status`: the whole local stack, on loopback, in one state folder.

Modes (``[stack] mode`` in the config file or ``NEXTWATCH_STACK_MODE``):

* ``local`` (default): Tansu, Cassandra 2.1 and the Flink connector jars from
  packages, as background processes; ports chosen free and written to
  ``<state dir>/config.toml`` for every client to read.
* ``external``: start nothing; check the brokers and nodes already named in the
  config (``[kafka]``, ``[cassandra]``), then create topics and apply CQL.
* ``testcontainers``: Kafka and Cassandra 5 containers through testcontainers,
  for machines with a Docker engine (not available, so not exercised, here).

``up`` is idempotent (a running healthy service is left alone), creates the
topics from :mod:`connectors.topics` and applies ``infra/cql``; ``down`` stops
everything it started and leaves nothing running.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.cassandra_store import apply_schema
from connectors.config import CassandraConfig, KafkaConfig, config_file, load_section, read_config_file, state_dir
from connectors.kafka_admin import ensure_topics
from infra.services import CassandraNode, FlinkRuntime, Service, ServiceStatus, TansuBroker

MODES = ("local", "external", "testcontainers")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class StackConfig:
    mode: str = "local"
    options: dict[str, str] | None = None

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        config = load_section(cls, "stack", env)
        if config.mode not in MODES:
            raise ValueError(f"[stack] mode must be one of {MODES}, not {config.mode!r}")
        return config


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_config(updates: dict[str, dict[str, Any]], path: Path | None = None) -> Path:
    """Merge ``updates`` into the config file, keeping sections and keys the user wrote."""
    path = path or config_file()
    data = read_config_file(path)
    for section, values in updates.items():
        data.setdefault(section, {}).update(values)
    lines = ["# Written by `nextwatch stack up`; your own keys and sections are kept.", ""]
    for section, values in data.items():
        lines.append(f"[{section}]")
        nested = {k: v for k, v in values.items() if isinstance(v, dict)}
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if not isinstance(v, dict)]
        for name, table in nested.items():
            lines += ["", f"[{section}.{name}]", *(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items())]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def local_services() -> list[Service]:
    return [TansuBroker(), CassandraNode(), FlinkRuntime()]


def _say(progress: Progress | None, text: str) -> None:
    if progress is not None:
        progress(text)


def up(progress: Progress | None = None) -> dict[str, Any]:
    """Start (or find running) every engine, then create topics and apply CQL. Returns what clients need."""
    mode = StackConfig.load().mode
    started = time.monotonic()
    if mode == "local":
        updates: dict[str, dict[str, Any]] = {}
        for service, section in zip(local_services(), ("kafka", "cassandra", "flink"), strict=True):
            t0 = time.monotonic()
            _say(progress, f"{service.name}: starting")
            values = service.start()
            if values:
                updates[section] = values
            _say(progress, f"{service.name}: up ({time.monotonic() - t0:.1f}s)")
        write_config(updates)
    elif mode == "testcontainers":
        write_config(_testcontainers_up(progress))
        FlinkRuntime().start()
    else:
        FlinkRuntime().start()
    kafka, cassandra = KafkaConfig.load(), CassandraConfig.load()
    _say(progress, f"topics: {kafka.bootstrap_servers}")
    topics = ensure_topics(kafka)
    if kafka.wire_format != "single-object":
        from connectors.registry import register_schemas

        _say(progress, f"schemas: registering schemas/ in {kafka.schema_registry_url}")
        register_schemas(kafka)
    _say(progress, f"cql: applying infra/cql to {cassandra.keyspace}")
    applied = apply_schema(cassandra)
    _say(progress, f"stack up in {time.monotonic() - started:.1f}s; config in {config_file()}")
    return {"mode": mode, "kafka": kafka.bootstrap_servers, "cassandra": f"{cassandra.contact_points}:{cassandra.port}",
            "topics": topics, "cql_applied": applied, "config": str(config_file())}


def status() -> list[ServiceStatus]:
    mode = StackConfig.load().mode
    if mode == "local":
        return [service.status() for service in local_services()]
    return _remote_status(mode)


def down(progress: Progress | None = None) -> None:
    mode = StackConfig.load().mode
    if mode == "local":
        from infra.flink_cluster import FlinkCluster

        _say(progress, "flink-cluster: stopping (if started)")
        FlinkCluster().stop()
        for service in reversed(local_services()):
            _say(progress, f"{service.name}: stopping")
            service.stop()
        left = [s.name for s in status() if s.state in ("running", "unhealthy")]
        if left:
            raise RuntimeError(f"still running after down: {left}")
    elif mode == "testcontainers":
        _testcontainers_down()
    _say(progress, "stack down")


def _remote_status(mode: str) -> list[ServiceStatus]:
    from connectors.cassandra_store import CassandraUnavailableError, wait_for_cassandra
    from connectors.errors import BrokerUnavailableError
    from connectors.kafka_admin import wait_for_broker

    kafka, cassandra = KafkaConfig.load(), CassandraConfig.load()
    result = []
    try:
        wait_for_broker(kafka, timeout_s=5)
        result.append(ServiceStatus("kafka", "running",
                                    f"{mode}: {kafka.bootstrap_servers}, {kafka.describe_security()}"))
    except BrokerUnavailableError as exc:
        result.append(ServiceStatus("kafka", "unhealthy", str(exc)))
    try:
        version = wait_for_cassandra(cassandra, timeout_s=5)
        result.append(ServiceStatus("cassandra", "running",
                                    f"{mode}: Cassandra {version}, {cassandra.describe_security()}"))
    except CassandraUnavailableError as exc:
        result.append(ServiceStatus("cassandra", "unhealthy", str(exc)))
    result.append(FlinkRuntime().status())
    return result


# -- testcontainers (machines with Docker) -----------------------------------------

_CONTAINERS_FILE = "containers.json"


def _testcontainers_up(progress: Progress | None) -> dict[str, dict[str, Any]]:
    # containers must outlive this CLI process; `down` removes them by id
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    from testcontainers.cassandra import CassandraContainer
    from testcontainers.kafka import KafkaContainer

    record = state_dir() / "run" / _CONTAINERS_FILE
    if record.exists():
        saved = json.loads(record.read_text())
        return {"kafka": saved["kafka"], "cassandra": saved["cassandra"]}
    _say(progress, "testcontainers: starting Kafka and Cassandra 5")
    kafka = KafkaContainer().with_kraft().start()
    cassandra = CassandraContainer("cassandra:5").start()
    host = cassandra.get_container_host_ip()
    values = {
        "kafka": {"bootstrap_servers": kafka.get_bootstrap_server()},
        "cassandra": {"contact_points": [host], "port": int(cassandra.get_exposed_port(9042))},
        "ids": [kafka.get_wrapped_container().id, cassandra.get_wrapped_container().id],
    }
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(values))
    return {"kafka": values["kafka"], "cassandra": values["cassandra"]}  # type: ignore[dict-item]


def _testcontainers_down() -> None:
    record = state_dir() / "run" / _CONTAINERS_FILE
    if not record.exists():
        return
    import docker

    client = docker.from_env()
    for container_id in json.loads(record.read_text()).get("ids", []):
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(container_id).remove(force=True)
    record.unlink()


def main_progress(text: str) -> None:
    print(f"[stack] {text}", file=sys.stderr, flush=True)
