"""One configuration object per component, read from a TOML file and the environment.

Precedence, lowest first: the dataclass defaults, the file, the environment. The
file is ``$NEXTWATCH_CONFIG`` or, when that is unset, ``<state dir>/config.toml``
(written by ``nextwatch stack up`` with the ports it chose), where the state dir is
``$NEXTWATCH_HOME`` or ``.nextwatch/`` in the repository.

Each section's scalar fields come from ``NEXTWATCH_<SECTION>_<FIELD>`` (e.g.
``NEXTWATCH_KAFKA_BOOTSTRAP_SERVERS``); client options pass straight through to the
library from ``[<section>.options]`` in the file or ``NEXTWATCH_<SECTION>_OPT_<name>``
in the environment, where ``__`` stands for a dot: ``NEXTWATCH_KAFKA_OPT_linger__ms=5``
becomes librdkafka's ``linger.ms=5``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from connectors.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("NEXTWATCH_HOME") or REPO_ROOT / ".nextwatch")


def config_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    configured = env.get("NEXTWATCH_CONFIG")
    return Path(configured) if configured else state_dir(env) / "config.toml"


def read_config_file(path: Path | None = None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    path = path or config_file(env)
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _coerce(section: str, name: str, hint: Any, raw: Any) -> Any:
    origin = getattr(hint, "__origin__", None)
    try:
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(f"{raw!r} is not a boolean")
            return text in ("1", "true", "yes")
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is str:
            return str(raw)
        if origin is list:
            return [s.strip() for s in raw.split(",") if s.strip()] if isinstance(raw, str) else list(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{section}] {name}: {exc}") from exc
    return raw


def load_section(cls: type[T], section: str, env: Mapping[str, str] | None = None,
                 file_data: Mapping[str, Any] | None = None) -> T:
    """Build ``cls`` (a dataclass with an ``options`` dict field) from file and environment."""
    env = os.environ if env is None else env
    data = read_config_file(env=env) if file_data is None else file_data
    from_file = dict(data.get(section, {}))
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(from_file) - known
    if unknown:
        raise ConfigError(f"[{section}] unknown keys {sorted(unknown)}; known: {sorted(known)}")
    options = {str(k): str(v) if not isinstance(v, bool) else str(v).lower()
               for k, v in dict(from_file.pop("options", {})).items()}
    values: dict[str, Any] = {k: _coerce(section, k, hints[k], v) for k, v in from_file.items()}
    prefix = f"NEXTWATCH_{section.upper()}_"
    for key, raw in env.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        if rest.startswith("OPT_"):
            options[rest[4:].replace("__", ".")] = raw
        elif rest.lower() in known and rest.lower() != "options":
            values[rest.lower()] = _coerce(section, rest.lower(), hints[rest.lower()], raw)
    if "options" in known:
        values["options"] = options
    return cls(**values)


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# what clients write, and whether they read the registry's framing (0x00 + schema id) too: a deployment moves
# from the first to the last, every reader to accept-registry before any writer to registry
WIRE_FORMATS = ("single-object", "accept-registry", "registry")
SASL_MECHANISMS = {"PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
                   "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
                   "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule"}
# a setting whose name holds one of these is a secret: never printed or logged
SECRET_WORDS = ("password", "secret", "jaas", "token", "credential")


def redacted(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with every secret's value replaced, for logs and status lines.

    >>> redacted({"sasl.username": "app", "sasl.password": "hunter2", "sasl.jaas.config": "x"})
    {'sasl.username': 'app', 'sasl.password': '***', 'sasl.jaas.config': '***'}
    """
    return {k: "***" if any(word in k.lower() for word in SECRET_WORDS) and v else v for k, v in settings.items()}


@dataclass(frozen=True)
class KafkaConfig:
    """Where the broker is and how clients talk to it, TLS and SASL included.

    The security settings are typed once here and given to each kind of client in its own words: librdkafka's
    (the SDK, consumers, admin: :meth:`client_config`) and the Java client's (the Flink jobs' sources and
    sinks: :meth:`java_properties`).

    >>> secure = KafkaConfig(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="app",
    ...                      sasl_password="s3cret", ssl_ca_location="/etc/kafka/ca.pem")
    >>> secure.client_config()["sasl.mechanisms"], secure.java_properties()["ssl.truststore.type"]
    ('SCRAM-SHA-512', 'PEM')
    >>> "s3cret" in repr(secure)
    False
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "nextwatch."
    partitions: int = 4
    replication_factor: int = 1
    connect_timeout_s: float = 10.0
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    sasl_mechanism: str = ""  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* only)
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)  # from the environment or a secret file, never a manifest
    ssl_ca_location: str = ""  # PEM file of the CA that signed the brokers' certificates (SSL, SASL_SSL)
    # single-object (Avro's), or Confluent Schema Registry framing: see WIRE_FORMATS and connectors/registry.py
    wire_format: str = "single-object"
    schema_registry_url: str = ""  # with a wire_format other than single-object; mock://NAME for tests
    options: dict[str, str] = field(default_factory=dict, repr=False)  # librdkafka, passed through

    def __post_init__(self) -> None:
        if self.wire_format not in WIRE_FORMATS:
            raise ConfigError(f"[kafka] wire_format must be one of {', '.join(WIRE_FORMATS)}, got "
                              f"{self.wire_format!r}")
        if self.wire_format != "single-object" and not self.schema_registry_url:
            raise ConfigError(f"[kafka] wire_format {self.wire_format} needs schema_registry_url")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(f"[kafka] security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, got "
                              f"{self.security_protocol!r}")
        if self.security_protocol.startswith("SASL_"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise ConfigError(f"[kafka] sasl_mechanism must be one of {', '.join(SASL_MECHANISMS)} with "
                                  f"{self.security_protocol}, got {self.sasl_mechanism!r}")
            if not self.sasl_username or not self.sasl_password:
                raise ConfigError(f"[kafka] {self.security_protocol} needs sasl_username and sasl_password "
                                  f"(NEXTWATCH_KAFKA_SASL_PASSWORD)")
        elif self.sasl_mechanism or self.sasl_username or self.sasl_password:
            raise ConfigError(f"[kafka] SASL settings are set but security_protocol is {self.security_protocol}")
        if self.ssl_ca_location and "SSL" not in self.security_protocol:
            raise ConfigError(f"[kafka] ssl_ca_location is set but security_protocol is {self.security_protocol}")

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, file_data: Mapping[str, Any] | None = None) -> KafkaConfig:
        return load_section(cls, "kafka", env, file_data)

    def security(self) -> dict[str, str]:
        """The security settings in librdkafka's words (empty for PLAINTEXT)."""
        settings = {"security.protocol": self.security_protocol} if self.security_protocol != "PLAINTEXT" else {}
        if self.security_protocol.startswith("SASL_"):
            settings.update({"sasl.mechanisms": self.sasl_mechanism, "sasl.username": self.sasl_username,
                             "sasl.password": self.sasl_password})
        if self.ssl_ca_location:
            settings["ssl.ca.location"] = self.ssl_ca_location
        return settings

    def java_properties(self) -> dict[str, str]:
        """The security settings in the Java client's words, for the Flink jobs' sources and sinks."""
        settings = {"security.protocol": self.security_protocol} if self.security_protocol != "PLAINTEXT" else {}
        if self.security_protocol.startswith("SASL_"):
            quote = lambda text: text.replace("\\", "\\\\").replace('"', '\\"')  # noqa: E731 - JAAS string
            settings.update({"sasl.mechanism": self.sasl_mechanism,
                             "sasl.jaas.config": f'{SASL_MECHANISMS[self.sasl_mechanism]} required '
                                                 f'username="{quote(self.sasl_username)}" '
                                                 f'password="{quote(self.sasl_password)}";'})
        if self.ssl_ca_location:
            settings.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": self.ssl_ca_location})
        return settings

    def describe_security(self) -> str:
        """How clients authenticate, for status lines: never the password.

        >>> KafkaConfig(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="app",
        ...             sasl_password="s3cret").describe_security()
        'SASL_SSL as app (PLAIN)'
        """
        text = self.security_protocol
        if self.security_protocol.startswith("SASL_"):
            text += f" as {self.sasl_username} ({self.sasl_mechanism})"
        return text + (f", CA {self.ssl_ca_location}" if self.ssl_ca_location else "")

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka settings: bootstrap and security, then ``overrides`` (component defaults), then ``options``."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.security(), **overrides, **self.options}


@dataclass(frozen=True)
class CassandraConfig:
    """Where Cassandra is; ``options`` go to ``cassandra.cluster.Cluster`` as keyword arguments."""

    contact_points: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    port: int = 9042
    keyspace: str = "nextwatch"
    protocol_version: int = 3  # 2.1 cannot negotiate; 4.x/5.x accept 3 too
    replication_factor: int = 1
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 10.0
    # a job's write that fails for want of Cassandra (timed out, no host, unavailable) is retried with backoff
    # for this long before the task fails (and the job's restart strategy takes over)
    write_retry_s: float = 300.0
    username: str = ""  # with password: PlainTextAuthProvider (Cassandra's PasswordAuthenticator)
    password: str = field(default="", repr=False)  # from the environment or a secret file, never a manifest
    ssl_ca_file: str = ""  # PEM of the CA that signed the nodes' certificates: TLS to every node
    ssl_verify_hostname: bool = True
    options: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if bool(self.username) != bool(self.password):
            raise ConfigError("[cassandra] username and password go together (NEXTWATCH_CASSANDRA_PASSWORD)")

    def describe_security(self) -> str:
        """How the driver authenticates, for status lines: never the password."""
        text = f"as {self.username}" if self.username else "no credentials"
        return text + (f", TLS with CA {self.ssl_ca_file}" if self.ssl_ca_file else ", no TLS")

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None,
             file_data: Mapping[str, Any] | None = None) -> CassandraConfig:
        return load_section(cls, "cassandra", env, file_data)
