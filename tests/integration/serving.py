"""``nextwatch serve`` as a process of its own for the integration tests, and plain HTTP calls to it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from connectors.config import REPO_ROOT, CassandraConfig, KafkaConfig


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
    port = free_port()
    environment = {**env, "NEXTWATCH_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
                   "NEXTWATCH_CASSANDRA_KEYSPACE": cassandra.keyspace, "NEXTWATCH_SERVE_PORT": str(port),
                   **{f"NEXTWATCH_SERVE_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
                      for k, v in settings.items()}}
    process = subprocess.Popen([sys.executable, "-m", "infra.cli", "serve"], cwd=REPO_ROOT, env=environment,
                               start_new_session=True)
    service = Service(port, process)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if service.call("/healthz", timeout_s=2).status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nextwatch serve did not become healthy (exit code {process.poll()})")
            time.sleep(0.2)
        yield service
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until(what: str, check: Any, timeout_s: float, every_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every_s)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
