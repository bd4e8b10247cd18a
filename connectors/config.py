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


@dataclass(frozen=True)
class KafkaConfig:
    """Where the broker is and how clients talk to it."""

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "nextwatch."
    partitions: int = 4
    replication_factor: int = 1
    connect_timeout_s: float = 10.0
    options: dict[str, str] = field(default_factory=dict)  # librdkafka, passed through

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, file_data: Mapping[str, Any] | None = None) -> KafkaConfig:
        return load_section(cls, "kafka", env, file_data)

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka settings: bootstrap, then ``overrides`` (component defaults), then ``options``."""
        return {"bootstrap.servers": self.bootstrap_servers, **overrides, **self.options}


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
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None,
             file_data: Mapping[str, Any] | None = None) -> CassandraConfig:
        return load_section(cls, "cassandra", env, file_data)
