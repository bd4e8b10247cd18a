"""The Flink runtime every nextwatch job shares: environment, start and stop, topics in and out, Cassandra, metrics.

A job (``jobs/flink/<job>/job.py``) is a :class:`JobSpec`: a name, its settings
class and a ``build`` that wires named steps onto an environment. Everything a job
would otherwise write again lives here:

* the environment and its settings (:class:`FlinkConfig`, :func:`stream_environment`);
* one way to start, run or submit any job (:func:`start`, :func:`run`, :func:`main`)
  and to stop one with a savepoint (:func:`stop_with_savepoint`);
* reading topics: :func:`read_events` (source, Avro decode and contract checks,
  with unreadable messages dead-lettered or counted) and :func:`read_topic`;
  writing them: :func:`kafka_row` rows to ``connectors.flink_kafka.write_to_topics``;
* Cassandra from an operator: :class:`Stores` (a store per operator instance,
  drained on close) and the :class:`CassandraWriter` base;
* operator helpers: :class:`EventCount` metrics, :func:`arm_timer`, keyed state that counts
  what it cannot decode (:class:`KeyedState`, :func:`skips_unreadable_state`), broadcast state
  kept newest-first (:func:`keep_newest`) and restored into Python-side caches
  (:class:`BroadcastRestore`).

Python functions run in *process* mode by default: in a mini-cluster here the feature
job does 1.6x and the rows job 1.2x the events/s of thread mode (``docs/architecture.md``,
where the time goes), though a trivial operator is faster in thread mode. State written
in one mode is not read in the other, so savepoints and retained checkpoints record
their mode and a restore in the other mode is refused (:func:`check_restore_mode`).
Thread mode finds its packages only when the virtual environment is active
(``VIRTUAL_ENV`` and its ``bin`` on ``PATH``, else "No module named 'pemja'"), so
:func:`stream_environment` activates the running interpreter's environment before the
JVM starts.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import logging
import os
import sys
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from pyflink.common import Row, Types
from pyflink.datastream import OutputTag, ProcessFunction

from connectors.cassandra_store import AsyncStore, connect
from connectors.codec import EventCodec
from connectors.config import CassandraConfig, KafkaConfig, load_section, state_dir
from connectors.erasure_store import ErasureStore
from connectors.errors import ConfigError
from connectors.flink_kafka import connector_jar_urls, kafka_source, share_connector_classes
from connectors.limits import DEFAULT_LIMITS, Limits
from connectors.privacy import PrivacyConfig, erasure_digest, is_member_id
from connectors.registry import wire_format
from connectors.state import DECODE_ERRORS, StateDecodeError
from connectors.topics import TOPICS_BY_NAME
from jobs.context import now_ms
from jobs.decoding import DECODE_REJECTIONS, Rejection, decode_message, timestamp_mismatch
from jobs.records.rejected_event import rejection_record

LOG = logging.getLogger("nextwatch.jobs")
UNREADABLE: tuple[type[Exception], ...] = (StateDecodeError, *DECODE_ERRORS)  # what decoding state can raise

# -- the environment ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlinkConfig:
    """Settings of a job's runtime; ``options`` are Flink configuration keys, passed through."""

    parallelism: int = 1  # 0: whatever the environment says (e.g. `flink run -p 2`)
    execution_mode: str = "process"  # or "thread" (state taken in one mode is not read by the other)
    checkpoint_interval_ms: int = 10_000
    checkpoint_dir: str = ""  # default: <state dir>/flink/checkpoints
    restore_from: str = ""  # a retained checkpoint or savepoint to start from (same execution mode!)
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, file_data: Mapping[str, Any] | None = None) -> FlinkConfig:
        config = load_section(cls, "flink", env, file_data)
        if config.execution_mode not in ("thread", "process"):
            raise ValueError(f"[flink] execution_mode must be thread or process, not {config.execution_mode!r}")
        return config

    def checkpoint_path(self) -> Path:
        return (Path(self.checkpoint_dir) if self.checkpoint_dir else state_dir() / "flink" / "checkpoints").resolve()

    def checkpoint_uri(self) -> str:
        return self.checkpoint_path().as_uri()


EXECUTION_MODE_FILE = "nextwatch-execution-mode"  # in a savepoint's folder, or a job's checkpoint folder


def record_execution_mode(folder: Path, mode: str) -> None:
    """Note beside state (a savepoint, or a job's retained checkpoints) the execution mode that wrote it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / EXECUTION_MODE_FILE).write_text(mode + "\n")


def check_restore_mode(path: str, mode: str) -> None:
    """Refuse to restore state written in the other execution mode: Flink would start from empty state.

    The mode is read from the savepoint's folder or, for a retained checkpoint (``<job>/chk-N``), its
    job's folder; state without a record (written before records were kept) is restored with a warning.
    """
    folder = Path(urllib.parse.urlparse(path).path if path.startswith("file:") else path)
    for candidate in (folder, folder.parent):
        record = candidate / EXECUTION_MODE_FILE
        if record.is_file():
            written = record.read_text().strip()
            if written != mode:
                raise ConfigError(
                    f"{path} was written in {written} mode and [flink] execution_mode is {mode}: Flink would "
                    f"start the job from empty state. Restore it with execution_mode = \"{written}\".")
            return
    LOG.warning("%s has no record of its execution mode; restoring it in %s mode (state written in the other "
                "mode would not be read)", path, mode)


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest completed checkpoint (a ``chk-N`` folder with ``_metadata``) under ``checkpoint_dir``."""
    completed = [p.parent for p in checkpoint_dir.glob("*/chk-*/_metadata")]
    return max(completed, key=lambda p: p.stat().st_mtime, default=None)


def activate_virtualenv() -> None:
    """Put this interpreter's environment on PATH so thread-mode Python finds its packages."""
    bin_dir = str(Path(sys.executable).parent)
    os.environ["VIRTUAL_ENV"] = sys.prefix
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


# Process mode hands elements to Python in bundles and keeps the state Python changed as objects until
# the bundle ends: large bundles, ended every 100 ms so that a quiet stream is not held back longer,
# and state caches of 20,000 keys (Flink's default is 1,000; a read past the cache is a round trip to
# Java). ``[flink.options]`` overrides any of them.
PROCESS_MODE_SETTINGS = {
    "python.fn-execution.bundle.size": "100000",
    "python.fn-execution.bundle.time": "100",
    "python.state.cache-size": "20000",
    "python.map-state.read-cache-size": "20000",
    "python.map-state.write-cache-size": "20000",
}


# Recovery, the same in the mini-cluster and on the standalone cluster (``infra/flink_cluster.py``).
# Exponential delay with a reset, not a budget: an outage of any length is waited out (restarts back off
# from 1 s to at most 30 s, with jitter so that jobs do not retry in step), and a job that has run
# 10 minutes without failing starts again from 1 s. A fixed number of attempts (what a failure rate per
# interval amounts to as well) would end a job on the next long outage and need a person to restart it;
# a crash loop instead shows as a climbing ``numRestarts``. Checkpoints that fail while Cassandra or the
# broker is away (writers hold the barrier while they retry) are tolerated for 10 minutes at the default
# interval: an outage costs checkpoints, not the job.
RECOVERY_SETTINGS = {
    "restart-strategy.type": "exponential-delay",
    "restart-strategy.exponential-delay.initial-backoff": "1 s",
    "restart-strategy.exponential-delay.max-backoff": "30 s",
    "restart-strategy.exponential-delay.backoff-multiplier": "2.0",
    "restart-strategy.exponential-delay.reset-backoff-threshold": "10 min",
    "restart-strategy.exponential-delay.jitter-factor": "0.1",
    "execution.checkpointing.tolerable-failed-checkpoints": "60",
}


def flink_settings(config: FlinkConfig) -> dict[str, str]:
    settings = {
        "pipeline.jars": ";".join(connector_jar_urls()),
        "python.execution-mode": config.execution_mode,
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "execution.checkpointing.dir": config.checkpoint_uri(),
        "state.checkpoints.dir": config.checkpoint_uri(),
        # a cancelled or killed job can be restarted from its last checkpoint
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        **RECOVERY_SETTINGS,
    }
    if config.restore_from:
        settings["execution.state-recovery.path"] = config.restore_from
    if config.execution_mode == "process":
        settings.update(PROCESS_MODE_SETTINGS)
    settings.update(config.options)
    return settings


def stream_environment(config: FlinkConfig | None = None) -> Any:
    """A StreamExecutionEnvironment (local mini-cluster unless submitted with ``flink run``)."""
    config = config or FlinkConfig.load()
    activate_virtualenv()
    from pyflink.common import Configuration
    from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment

    if config.restore_from:
        check_restore_mode(config.restore_from, config.execution_mode)
    flink_conf = Configuration()
    for key, value in flink_settings(config).items():
        flink_conf.set_string(key, value)
    share_connector_classes(connector_jar_urls())
    env = StreamExecutionEnvironment.get_execution_environment(flink_conf)
    if config.parallelism > 0:
        env.set_parallelism(config.parallelism)
    if config.checkpoint_interval_ms > 0:
        env.enable_checkpointing(config.checkpoint_interval_ms, CheckpointingMode.AT_LEAST_ONCE)
    return env


# What PyFlink sets in a process whose Python operators ran in it (a mini-cluster's loopback workers): a
# process started from there to run a job of its own must not inherit them ("launching the
# PythonGatewayServer during Python UDF execution", workers dialling the parent's loopback server).
PYFLINK_WORKER_VARIABLES = ("PYFLINK_GATEWAY_DISABLED", "PYFLINK_GATEWAY_PORT", "PYTHON_LOOPBACK_SERVER_ADDRESS",
                            "_PYFLINK_CONN_INFO_PATH", "_PYTHON_WORKER_MEMORY_LIMIT", "BOOT_LOG_DIR",
                            "SEMI_PERSISTENT_DIRECTORY")


def job_process_environment(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for a child process that runs a job (its own JVM and Python workers); an empty ``JAVA_HOME``
    (PyFlink would look for ``bin/java``) is left out too."""
    return {key: value for key, value in env.items()
            if key not in PYFLINK_WORKER_VARIABLES and not (key == "JAVA_HOME" and not value)}


def execution_mode(env: Any) -> str:
    """The mode ``env`` runs Python operators in, "thread" or "process" (Flink's default)."""
    from pyflink.util.java_utils import get_j_env_configuration

    return str(get_j_env_configuration(env._j_stream_execution_environment)
               .getString("python.execution-mode", "process"))


# -- jobs: start, run, submit, stop --------------------------------------------------------------------


class Step(NamedTuple):
    """A step of a job: its uid (what state is restored by: never change it) and its name (what people read)."""

    uid: str
    name: str


def named(stream: Any, step: Step) -> Any:
    return stream.uid(step.uid).name(step.name)


@dataclass(frozen=True)
class JobSpec:
    """What the runtime needs of a job: its name, its settings (a ``[section]`` with ``load()``) and its wiring."""

    name: str
    settings: type[Any]
    # (env, kafka, cassandra, settings) -> wires every step onto env
    build: Callable[[Any, KafkaConfig, CassandraConfig, Any], Any]


def built(job: JobSpec, kafka: KafkaConfig | None = None, cassandra: CassandraConfig | None = None,
          settings: Any = None, flink: FlinkConfig | None = None, group_id: str | None = None) -> Any:
    """An environment with ``job`` wired onto it; anything left out is loaded from the config file and environment."""
    settings = settings or job.settings.load()
    if group_id:
        settings = replace(settings, group_id=group_id)
    kafka = kafka or KafkaConfig.load()
    env = stream_environment(flink or FlinkConfig.load())
    env.get_config().set_global_job_parameters(
        {**wire_parameters(kafka), MEMBER_IDS_ONLY: str(PrivacyConfig.load().pseudonymous_ids).lower()})
    job.build(env, kafka, cassandra or CassandraConfig.load(), settings)
    return env


# The wire format travels to every operator as global job parameters: the Python workers of a cluster do not
# have the environment or config file of the process that built the job.
WIRE_PARAMETERS = ("wire_format", "schema_registry_url", "topic_prefix")
MEMBER_IDS_ONLY = "nextwatch.privacy.pseudonymous_ids"  # "true": an event whose user_id is no member id is dropped


def wire_parameters(kafka: KafkaConfig) -> dict[str, str]:
    return {f"nextwatch.kafka.{name}": str(getattr(kafka, name)) for name in WIRE_PARAMETERS}


def job_codec(runtime_context: Any, limits: Limits = DEFAULT_LIMITS) -> EventCodec:
    """An operator's codec, writing and reading the wire format the job was built with."""
    values = {name: runtime_context.get_job_parameter(f"nextwatch.kafka.{name}", "") for name in WIRE_PARAMETERS}
    if values["wire_format"] in ("", "single-object"):
        return EventCodec(limits=limits)
    return EventCodec(limits=limits, wire=wire_format(KafkaConfig(**values)))


def start(job: JobSpec, kafka: KafkaConfig | None = None, cassandra: CassandraConfig | None = None,
          settings: Any = None, flink: FlinkConfig | None = None, group_id: str | None = None) -> Any:
    """Submit ``job`` to this process's mini-cluster (or the cluster `flink run` runs it for); its JobClient."""
    flink = flink or FlinkConfig.load()
    client = built(job, kafka, cassandra, settings, flink, group_id).execute_async(job.name)
    record_execution_mode(flink.checkpoint_path() / str(client.get_job_id()), flink.execution_mode)
    return client


def run(job: JobSpec, flink: FlinkConfig | None = None) -> Any:
    """Run ``job`` in this process's mini-cluster until it ends (``nextwatch jobs run``); its result."""
    return start(job, flink=flink).get_job_execution_result().result()


def main(job: JobSpec, argv: list[str] | None = None) -> None:
    """Entry point of ``flink run -py jobs/flink/<job>/job.py`` (parallelism from ``-p``).

    Detached, as ``nextwatch jobs submit`` runs it: that command records the execution mode.
    """
    argparse.ArgumentParser(description=f"nextwatch {job.name}").parse_args(argv)
    built(job, flink=replace(FlinkConfig.load(), parallelism=0)).execute(job.name)


def stop_with_savepoint(client: Any, directory: Path, execution_mode: str) -> Path:
    """Stop a job started by :func:`start` (in ``execution_mode``) with a savepoint under ``directory``; the
    savepoint's folder, which records the mode.

    PyFlink 2.0's ``JobClient.stop_with_savepoint`` calls a Java overload that no longer exists.
    """
    from pyflink.java_gateway import get_gateway

    canonical = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
    path = client._j_job_client.stopWithSavepoint(False, directory.resolve().as_uri(), canonical).get()
    savepoint = Path(str(path).removeprefix("file:"))
    record_execution_mode(savepoint, execution_mode)
    return savepoint


# -- topics in and out -------------------------------------------------------------------------------


def KAFKA_ROW_TYPE() -> Any:
    """``(k, v)`` rows of raw key and value bytes: what ``write_to_topics`` sends."""
    return Types.ROW_NAMED(["k", "v"], [Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.PRIMITIVE_ARRAY(Types.BYTE())])


def kafka_row(key: bytes, value: bytes) -> Any:
    return Row(k=key, v=value)


class RecordBound:
    """A record a job emits is at most ``limits.record_bytes``: the Kafka sinks fail the job on one over 1 MiB.

    One over the bound is not sent: it is counted (``not_applied_record_oversize``) and logged with its
    topic, key and size. Records are bounded by construction (every list and text in them is); this is
    the last line, so that a bug there costs one record and not the job.
    """

    def __init__(self, metrics: Any, topic: str, limits: Limits) -> None:
        self.topic, self.limit = topic, limits.record_bytes
        self.oversize = EventCount(metrics, "not_applied_record_oversize")

    def row(self, key: bytes, value: bytes) -> Any:
        """``kafka_row(key, value)``, or ``None`` when ``value`` is over the bound."""
        if len(value) <= self.limit:
            return Row(k=key, v=value)
        self.oversize.inc()
        LOG.error("%s record for key %r is %d bytes, over [limits] record_bytes %d: not sent",
                  self.topic, key[:128], len(value), self.limit)
        return None


DEAD_LETTER_TAG = OutputTag("dead-letter", KAFKA_ROW_TYPE())
PICKLED = Types.PICKLED_BYTE_ARRAY()


def as_is(event: Any) -> Iterable[Any]:
    return (event,)


class DecodeEvents(ProcessFunction):  # type: ignore[misc]
    """Raw message -> typed user event (Avro decode + contract checks), passed to ``route`` for what goes on.

    Unreadable messages are counted, in total (``events_invalid``) and by reason
    (``not_applied_<code>``, :class:`jobs.decoding.Rejection`); with ``dead_letters`` each also goes to
    the dead-letter side output with its reason and original bytes, cut to ``limits.dead_letter_bytes``
    (one job dead-letters, the others count). ``check_timestamps``: a Kafka timestamp other than the
    event's time is unreadable too (windows would misplace the event).
    """

    def __init__(self, job_name: str, route: Callable[[Any], Iterable[Any]] = as_is, dead_letters: bool = False,
                 check_timestamps: bool = False, limits: Limits = DEFAULT_LIMITS) -> None:
        self.job_name, self.route = job_name, route
        self.dead_letters, self.check_timestamps, self.limits = dead_letters, check_timestamps, limits

    def open(self, runtime_context: Any) -> None:
        self.codec = job_codec(runtime_context, self.limits)
        self.member_ids_only = runtime_context.get_job_parameter(MEMBER_IDS_ONLY, "false") == "true"
        metrics = runtime_context.get_metrics_group()
        self.events_in = EventCount(metrics, "events_in")
        self.invalid = EventCount(metrics, "events_invalid")
        self.not_applied = ReasonCounts(metrics, DECODE_REJECTIONS)

    def process_element(self, value: bytes | None, ctx: Any) -> Iterator[Any]:
        self.events_in.inc()
        event, rejection = decode_message(self.codec, value, now_ms(), self.limits)
        if event is not None and self.check_timestamps:
            rejection = timestamp_mismatch(ctx.timestamp(), event)
            event = None if rejection else event
        if (event is not None and self.member_ids_only and hasattr(event, "user_id")
                and not is_member_id(event.user_id)):
            # an account id that bypassed the SDK: counted, and not dead-lettered, which would keep the id
            self.invalid.inc()
            self.not_applied.inc("not_member_id")
            return
        if event is None:
            rejection = rejection or Rejection("undecodable", "unreadable")
            self.invalid.inc()
            self.not_applied.inc(rejection.code)
            if self.dead_letters:
                kind = "OVERSIZE" if rejection.code == "oversize" else "INVALID"
                record = rejection_record(kind, rejection.reason, self.job_name, value or b"",
                                          reason_code=rejection.code, limits=self.limits)
                yield DEAD_LETTER_TAG, kafka_row(b"", self.codec.encode_record("rejected_event", record))
            return
        yield from self.route(event)


def read_topic(env: Any, kafka: KafkaConfig, topics: Iterable[str], group_id: str, step: Step,
               watermarks: Any = None) -> Any:
    """A KafkaSource of raw message values over declared ``topics``, from the group's offsets or the start."""
    from pyflink.common import WatermarkStrategy

    source = kafka_source(kafka, [TOPICS_BY_NAME[t].full_name(kafka) for t in topics], group_id)
    return named(env.from_source(source, watermarks or WatermarkStrategy.no_watermarks(), step.name), step)


@dataclass(frozen=True)
class Decoded:
    """What :func:`read_events` returns: the routed events, and the dead letters beside them."""

    events: Any

    @property
    def dead_letters(self) -> Any:
        """``(k, v)`` rows for the dead-letter topic (only where the decoder has ``dead_letters``)."""
        return self.events.get_side_output(DEAD_LETTER_TAG)


def read_events(env: Any, kafka: KafkaConfig, topics: Iterable[str], group_id: str, source: Step, decode: Step,
                decoder: DecodeEvents, watermarks: Any = None) -> Decoded:
    """Topics of user events -> typed events (through ``decoder``), and the dead letters."""
    raw = read_topic(env, kafka, topics, group_id, source, watermarks)
    return Decoded(named(raw.process(decoder, output_type=PICKLED), decode))


# -- Cassandra from an operator ----------------------------------------------------------------------


@dataclass(frozen=True)
class Stores:
    """How operators reach Cassandra: each operator instance opens its stores (over one session) and closes them.

    Unit tests pass an object with the same two methods that hands out fakes (``tests/flink_fakes.py``).
    """

    cassandra: CassandraConfig

    def open(self, *store_types: type[AsyncStore]) -> list[Any]:
        """One store of each type, sharing one session."""
        session = connect(self.cassandra, self.cassandra.keyspace)
        return [store_type(session, self.cassandra.keyspace, retry_for_s=self.cassandra.write_retry_s)
                for store_type in store_types]

    def close(self, *stores: Any) -> None:
        """Wait for every write (each acknowledged before the operator is gone), then end the session."""
        try:
            for store in stores:
                store.drain()
        finally:
            stores[0].session.cluster.shutdown()


class CassandraWriter:
    """Base of operators that write (or read) Cassandra: one store per instance, opened in ``open``, drained
    and closed in ``close``. Subclasses set ``store_type`` and call :meth:`open_store` from ``open``."""

    store_type: type[AsyncStore] = AsyncStore

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.store: Any = None

    def open_store(self) -> None:
        (self.store,) = self.stores.open(self.store_type)

    def close(self) -> None:
        if self.store is not None:
            self.stores.close(self.store)
            self.store = None


# -- operator helpers --------------------------------------------------------------------------------


class EventCount:
    """An event count kept in Python and read by Flink's metric system as a gauge.

    A Flink counter's ``inc()`` is a call into Java per event in thread mode; the gauge is read
    only when a reporter or the REST API asks, and is exact at any moment.
    """

    def __init__(self, metrics: Any, name: str) -> None:
        self.value = 0
        metrics.gauge(name, lambda: self.value)

    def inc(self, by: int = 1) -> None:
        self.value += by


DUPLICATE_LOG_EVERY = 1_000


def log_duplicate(count: int, event: Any) -> None:
    """Record a sample of the duplicates a job skips (the first, then one in ``DUPLICATE_LOG_EVERY``): each is
    counted, and these lines say which events they were."""
    if count == 1 or count % DUPLICATE_LOG_EVERY == 0:
        LOG.info("duplicate #%d skipped: event %s of member %s (the same id and content applied before)",
                 count, event.event_id, event.user_id)


class ReasonCounts:
    """Messages not applied, counted by reason: a gauge ``not_applied_<reason>`` each (an unforeseen reason
    is counted under ``other``, so nothing goes uncounted)."""

    def __init__(self, metrics: Any, reasons: Iterable[str]) -> None:
        self.counts = {reason: EventCount(metrics, f"not_applied_{reason}") for reason in (*reasons, "other")}

    def inc(self, reason: str, by: int = 1) -> None:
        (self.counts.get(reason) or self.counts["other"]).inc(by)


STALE_TIMER_MS = 10_000  # far past any flush delay (at most 1 s) and the timer's lag behind a busy task


def flush_due(armed_at: int, now: int) -> bool:
    """Whether a key's flush timer is to be armed: none is (``armed_at`` 0), or it was armed so long ago
    that it cannot still be pending. A flag whose timer was lost would otherwise leave the key unflushed
    for good; a timer armed twice fires twice, and the second finds nothing armed.

    >>> flush_due(0, 5_000), flush_due(4_000, 5_000), flush_due(1, 20_000)  # True: a flag of older state
    (True, False, True)
    """
    return not armed_at or now - armed_at > STALE_TIMER_MS


def arm_timer(ctx: Any, delay_ms: int) -> int:
    """A processing-time timer ``delay_ms`` from now; when it fires.

    Callers keep an ``armed`` flag in their state so that a key holds one timer at a time.
    """
    timers = ctx.timer_service()
    at = timers.current_processing_time() + delay_ms
    timers.register_processing_time_timer(at)
    return int(at)


def keep_newest(state: Any, key: str, value: Any, newer: Callable[[Any], bool],
                failures: EventCount | None = None) -> bool:
    """Put ``value`` in a (broadcast) map state unless what it holds is newer; ``True`` when put.

    ``newer(known)``: whether ``value`` should replace ``known`` (an entry that cannot be decoded is
    counted in ``failures`` and replaced).
    """
    known = state.get(key) if failures is None else broadcast_value(state, key, failures)
    if known is not None and not newer(known):
        return False
    state.put(key, value)
    return True


class UnreadableState(Exception):
    """Keyed state that cannot be decoded (already counted and logged): skip what needed it."""


class KeyedState:
    """A keyed value state (pickled, through ``connectors.state``) that says when it cannot be read.

    What cannot be decoded is counted (``state_decode_failures``), logged with the key and the reason,
    and left as it is: never taken for empty, so a fixed version of the code still finds it. The element
    or timer that needed it is skipped (see :func:`skips_unreadable_state`).

    With ``cache_keys``, the value last written for each of that many keys (least recently used out) is
    also kept as the object itself, so that the next read of the key is a dictionary look-up instead of a
    call into Java and an unpickling. That is exact because this instance is the only reader and writer
    of its keys' state (a restore or a rescale makes new instances, with empty caches), on two terms the
    callers keep: they pass the key (``value(key)``, ``update(value, key)``), and they do not change a
    value after writing it. A read takes the key's entry out of the cache, so a value changed and not
    written back is read from Flink again, as it would be without the cache.
    """

    def __init__(self, runtime_context: Any, name: str, failures: EventCount, cache_keys: int = 0) -> None:
        from pyflink.datastream.state import ValueStateDescriptor

        self.name, self.failures, self.cache_keys = name, failures, cache_keys
        self.state = runtime_context.get_state(ValueStateDescriptor(name, PICKLED))
        self._cache: OrderedDict[Any, Any] = OrderedDict()

    def value(self, key: Any = None) -> Any:
        if key is not None:
            cached = self._cache.pop(key, None)
            if cached is not None:
                return cached
        try:
            return self.state.value()
        except UNREADABLE as exc:
            self.failures.inc()
            LOG.error("state %r of this key cannot be decoded, left as it is: %s", self.name, exc)
            raise UnreadableState(str(exc)) from exc

    def update(self, value: Any, key: Any = None) -> None:
        self.state.update(value)
        if key is not None and self.cache_keys > 0:
            self._cache[key] = value
            self._cache.move_to_end(key)
            if len(self._cache) > self.cache_keys:
                self._cache.popitem(last=False)

    def clear(self, key: Any = None) -> None:
        """Drop the key's state (an erased member's)."""
        self.state.clear()
        if key is not None:
            self._cache.pop(key, None)


STATE_CACHE_KEYS = 4096  # per operator instance: members or titles whose newest state is kept as objects


class ErasedMembers:
    """The members a member-keyed operator applies nothing of: the ledger's at ``open`` and those whose erasure
    request this instance handled since (a member's events and requests reach one subtask; a rescale or a
    restart opens new instances, which read the ledger). Digests only: neither memory nor state holds the id.

    Events of a listed member are counted as ``not_applied_erased_member``.
    """

    def __init__(self, stores: Stores | None, metrics: Any) -> None:
        self.digests: set[str] = set()
        if stores is not None:
            (ledger,) = stores.open(ErasureStore)
            try:
                self.digests = set(ledger.digests() or ())
            finally:
                stores.close(ledger)
        self.dropped = EventCount(metrics, "not_applied_erased_member")
        metrics.gauge("erased_members_known", lambda: len(self.digests))

    def holds(self, user_id: str) -> bool:
        """Whether ``user_id`` is erased (counting the event that asked as not applied)."""
        if erasure_digest(user_id) in self.digests:
            self.dropped.inc()
            return True
        return False

    def add(self, user_id: str) -> None:
        self.digests.add(erasure_digest(user_id))


Method = TypeVar("Method", bound=Callable[..., Any])


def skips_unreadable_state(method: Method) -> Method:
    """For ``process_element`` and ``on_timer``: what meets unreadable keyed state is skipped (it is counted)."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generator(self: Any, *args: Any) -> Iterator[Any]:
            try:
                yield from method(self, *args)
            except UnreadableState:
                return

        return generator  # type: ignore[return-value]

    @functools.wraps(method)
    def plain(self: Any, *args: Any) -> Any:
        try:
            return method(self, *args)
        except UnreadableState:
            return None

    return plain  # type: ignore[return-value]


def broadcast_value(state: Any, key: str, failures: EventCount) -> Any:
    """A broadcast map state's value for ``key``; ``None`` when absent or unreadable (counted and logged: the
    topic's next record for the key replaces it)."""
    try:
        return state.get(key)
    except UNREADABLE as exc:
        failures.inc()
        LOG.error("broadcast state entry %r cannot be decoded: %s", key, exc)
        return None


class BroadcastRestore:
    """Refills a Python-side cache from broadcast state once per operator instance.

    After a restore the cache built in ``open`` is empty while broadcast state is not. The first
    callback that has a context (an element or a timer) calls :meth:`ensure`; each descriptor's
    entries go to its loader (one that cannot be decoded is counted and left out).
    """

    def __init__(self, loaders: list[tuple[Any, Callable[[Any], object]]], failures: EventCount) -> None:
        self.loaders, self.failures = loaders, failures
        self.done = False

    def ensure(self, ctx: Any) -> None:
        if self.done:
            return
        for descriptor, load in self.loaders:
            # PyFlink's broadcast state has no keys() in thread mode: entries are read as they come, so one
            # that cannot be decoded ends the walk over its descriptor (the topic's next records fill it in)
            try:
                for _key, value in ctx.get_broadcast_state(descriptor).items():
                    load(value)
            except UNREADABLE as exc:
                self.failures.inc()
                LOG.error("broadcast state %r cannot be decoded, the rest of it left out: %s", descriptor.name, exc)
        self.done = True
