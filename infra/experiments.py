"""``nextwatch experiments``: create, list and stop experiments on the compacted experiments topic.

``create`` checks a TOML definition field by field (:mod:`jobs.experiments.definition`),
then every variant's overrides with the component's own config (the file's section with
the override on top, through the same loader and checks the job runs at start), gives it
a free range of its layer's buckets and publishes version 1. ``stop`` publishes the next
version with its stop time. The topic is the only record of experiments: the newest
version of each name wins.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connectors.config import CassandraConfig, KafkaConfig, load_section, read_config_file, state_dir
from connectors.errors import ConfigError, NextwatchError
from jobs.experiments.definition import DefinitionError, Draft, Experiment, allocate, parse_definition
from jobs.experiments.report import ExperimentReport, SumsRow, build_report, sums_rows
from jobs.records.experiment import experiment_from_record, experiment_record, newest

TOPIC = "experiments"
_MAX_FILE_BYTES = 64 * 1024


def component_configs() -> dict[str, type]:
    """Each component whose settings experiments may change (``OVERRIDABLE``), by its config class."""
    from jobs.flink.learning.config import LearningJobConfig
    from jobs.flink.rows.config import RowsJobConfig

    return {"learning": LearningJobConfig, "rows": RowsJobConfig}


def load_definition(path: Path, now_ms: int) -> Draft:
    """Read and check ``path``; the error names the file and the field."""
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            raise NextwatchError(f"{path}: over {_MAX_FILE_BYTES // 1024} KiB; an experiment is a short file")
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise NextwatchError(f"{path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise NextwatchError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return parse_definition(data, now_ms)
    except DefinitionError as exc:
        raise NextwatchError(f"{path}: {exc}") from exc


def check_overrides(draft: Draft, file_data: Mapping[str, Any] | None = None) -> None:
    """Load each overridden component's config as a variant would run it; refuse a bad value by its name."""
    file_data = read_config_file() if file_data is None else file_data
    configs = component_configs()
    for variant in draft.variants:
        for component, config in configs.items():
            settings = variant.settings(component)
            if not settings:
                continue
            section = {**dict(file_data.get(component, {})), **settings}
            try:  # env={}: the variant's values, not whatever this shell's environment says
                load_section(config, component, env={}, file_data={component: section})
            except ConfigError as exc:
                raise NextwatchError(f"variant {variant.name!r}: {exc}") from exc


def current(kafka: KafkaConfig, idle_s: float = 1.0) -> dict[str, Experiment]:
    """The newest version of every experiment on the topic."""
    from connectors.consumer import read_snapshot
    from connectors.kafka_admin import wait_for_broker
    from connectors.topics import TOPICS_BY_NAME

    topic = TOPICS_BY_NAME[TOPIC].full_name(kafka)
    if topic not in wait_for_broker(kafka).topics:
        raise NextwatchError(f"topic {topic} does not exist: `nextwatch topics create` (or `stack up`) creates it")
    held: dict[str, Experiment] = {}
    for decoded in read_snapshot(topic, kafka, idle_s=idle_s):
        if decoded.subject == "experiment":
            experiment = experiment_from_record(decoded.record)
            if newest(held, experiment):
                held[experiment.name] = experiment
    return held


def publish(kafka: KafkaConfig, experiment: Experiment) -> None:
    from connectors.producer import EventProducer
    from connectors.topics import TOPICS_BY_NAME

    with EventProducer(kafka) as producer:
        now = int(time.time() * 1000)
        value = producer.codec.encode_record("experiment", experiment_record(experiment, now), now)
        producer.send_encoded(TOPICS_BY_NAME[TOPIC].full_name(kafka), experiment.name.encode(), value, now)


def create(path: Path, kafka: KafkaConfig | None = None) -> Experiment:
    kafka = kafka or KafkaConfig.load()
    now = int(time.time() * 1000)
    draft = load_definition(path, now)
    check_overrides(draft)
    try:
        experiment = allocate(draft, list(current(kafka).values()), now)
    except DefinitionError as exc:
        raise NextwatchError(f"{path}: {exc}") from exc
    publish(kafka, experiment)
    return experiment


def stop(name: str, kafka: KafkaConfig | None = None) -> Experiment:
    kafka = kafka or KafkaConfig.load()
    held = current(kafka)
    if name not in held:
        raise NextwatchError(f"no experiment {name!r}; there are: {', '.join(sorted(held)) or 'none'}")
    now = int(time.time() * 1000)
    if held[name].stop_ms is not None and held[name].stop_ms <= now:  # type: ignore[operator]
        raise NextwatchError(f"experiment {name!r} stopped already (at {_when(held[name].stop_ms)})")
    stopped = held[name].stopped(now)
    publish(kafka, stopped)
    return stopped


def metric_rows(name: str, cassandra: CassandraConfig) -> list[SumsRow]:
    """The metrics job's rows of experiment ``name`` from Cassandra."""
    from connectors.cassandra_store import connect
    from connectors.experiment_store import read_metric_rows

    session = connect(cassandra, cassandra.keyspace)
    try:
        stored = read_metric_rows(session, cassandra.keyspace, name)
    finally:
        session.cluster.shutdown()
    return sums_rows(stored)


def report(name: str, kafka: KafkaConfig | None = None, cassandra: CassandraConfig | None = None,
           confidence: float = 0.95) -> ExperimentReport:
    """The report of experiment ``name`` from its definition (the topic) and its sums (Cassandra)."""
    if not 0.5 <= confidence < 1:
        raise NextwatchError(f"--confidence {confidence}: between 0.5 and 1, e.g. 0.95")
    held = current(kafka or KafkaConfig.load())
    if name not in held:
        raise NextwatchError(f"no experiment {name!r}; there are: {', '.join(sorted(held)) or 'none'}")
    return build_report(held[name], metric_rows(name, cassandra or CassandraConfig.load()), confidence)


def default_report_path(name: str) -> Path:
    return state_dir() / "reports" / f"experiment-{name}.html"


def state(experiment: Experiment, now_ms: int) -> str:
    if experiment.running(now_ms):
        return "running"
    return "scheduled" if now_ms < experiment.start_ms else "stopped"


def describe(experiment: Experiment, now_ms: int) -> str:
    """Several lines on one experiment: what ``list`` and ``create`` print."""
    rules = experiment.eligibility
    eligible = [f"{name}={','.join(sorted(values))}" for name, values in (
        ("country", rules.countries), ("device", rules.device_classes), ("tenure", rules.tenure),
        ("maturity", rules.maturity)) if values]
    total = sum(v.weight for v in experiment.variants)
    lines = [f"{experiment.name}  v{experiment.version}  {state(experiment, now_ms)}  layer={experiment.layer}  "
             f"traffic={experiment.traffic:.2%} (buckets {experiment.bucket_start}-"
             f"{experiment.bucket_start + experiment.bucket_count - 1})  started {_when(experiment.start_ms)}"
             + (f"  stopped {_when(experiment.stop_ms)}" if experiment.stop_ms is not None else ""),
             f"  eligible: {' '.join(eligible) or 'everyone'}"]
    for index, variant in enumerate(experiment.variants):
        changes = ", ".join(f"{k}={v}" for k, v in sorted(variant.overrides.items())) or "defaults"
        role = " (control)" if index == 0 else ""
        lines.append(f"  {variant.name}{role}: {variant.weight / total:.0%} of members, {changes}")
    if experiment.description:
        lines.append(f"  {experiment.description}")
    return "\n".join(lines)


def _when(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))
