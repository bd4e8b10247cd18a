"""``nextwatch serve`` as a process of its own for the integration tests, and plain HTTP calls to it."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from connectors.config import CassandraConfig, KafkaConfig
from infra.serve.server import serve_process


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Service:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, path: str, method: str = "GET", headers: Mapping[str, str] | None = None,
             body: Any = None, timeout_s: float = 10.0) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
        started = time.monotonic()
        try:
            payload = json.dumps(body).encode() if body is not None else None
            sent = {**(headers or {}), **({"content-type": "application/json"} if payload else {})}
            connection.request(method, path, body=payload, headers=sent)
            response = connection.getresponse()
            data = response.read()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data,
                          time.monotonic() - started)
        finally:
            connection.close()


@contextmanager
def serving(kafka: KafkaConfig, cassandra: CassandraConfig, env: Mapping[str, str],
            **settings: Any) -> Iterator[Service]:
    """The service over ``kafka``'s topics and ``cassandra``'s keyspace, with ``[serve]`` ``settings``."""
    environment = {**env, "NEXTWATCH_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
                   "NEXTWATCH_CASSANDRA_KEYSPACE": cassandra.keyspace,
                   **{f"NEXTWATCH_SERVE_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
                      for k, v in settings.items()}}
    with serve_process(environment) as (port, process):
        yield Service(port, process)


def wait_until(what: str, check: Any, timeout_s: float, every_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every_s)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
