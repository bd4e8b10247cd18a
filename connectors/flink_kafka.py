"""Kafka sources and sinks for PyFlink jobs, over the extracted connector jars.

The connector jar here (flink-connector-kafka 4.0.1-2.0 beside a plain
kafka-clients 3.9.1) is not the shaded fat jar PyFlink's wrapper assumes: two
wrapper methods name ``org.apache.flink.kafka.shaded.org.apache.kafka...``
classes that do not exist in it. :func:`patch_pyflink_kafka` points them at the
unshaded classes; without it ``set_partitions``, ``committed_offsets`` and
``offsets`` fail. Every builder below applies it first.

Message values travel into Python as raw bytes: there is no Flink Avro format jar
here, and decoding in Python lets a job dead-letter what it cannot read instead of
failing. Flink's own byte-array schema drops a null value (a tombstone) unseen; the
sources use ``nextwatch.flink.NullAsEmptyBytes`` (``connectors/java``, compiled by
``nextwatch stack up`` into :data:`NEXTWATCH_JAR` beside the connector jars), which
hands it on as zero bytes, so that the decoder dead-letters and counts it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from connectors.config import KafkaConfig, state_dir

FLINK_JARS_ENV = "NEXTWATCH_FLINK_JARS"
EXTRACTED_JARS = ("flink-connector-kafka.jar", "kafka-clients.jar")  # from the connector wheel
NEXTWATCH_JAR = "nextwatch-flink.jar"  # built from JAVA_SOURCES
CONNECTOR_JARS = (*EXTRACTED_JARS, NEXTWATCH_JAR)
JAVA_SOURCES = Path(__file__).resolve().parent / "java"
_patched = False
_shared_with: Any = None  # the gateway whose serving threads got the connector class loader


def connector_jar_dir() -> Path:
    """Where ``nextwatch stack up`` extracted the connector jars (``$NEXTWATCH_FLINK_JARS`` overrides)."""
    configured = os.environ.get(FLINK_JARS_ENV)
    return Path(configured) if configured else state_dir() / "engines" / "flink-jars"


def connector_jar_urls(directory: Path | None = None) -> list[str]:
    directory = directory or connector_jar_dir()
    missing = [name for name in CONNECTOR_JARS if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"Kafka connector jars {missing} not in {directory}; run `nextwatch stack up` first")
    return [(directory / name).resolve().as_uri() for name in CONNECTOR_JARS]


def build_nextwatch_jar(directory: Path | None = None) -> Path:
    """Compile ``connectors/java`` into :data:`NEXTWATCH_JAR` in ``directory`` (again only when a source is newer).

    Against PyFlink's own ``flink-dist`` jar, for Java 11 and later: the Flink version the jobs run on.
    """
    import pyflink

    target = (directory or connector_jar_dir()) / NEXTWATCH_JAR
    sources = sorted(JAVA_SOURCES.rglob("*.java"))
    if target.is_file() and all(source.stat().st_mtime <= target.stat().st_mtime for source in sources):
        return target
    flink_dist = sorted((Path(pyflink.__file__).parent / "lib").glob("flink-dist-*.jar"))
    if not flink_dist:
        raise FileNotFoundError(f"no flink-dist jar in {Path(pyflink.__file__).parent / 'lib'}")
    with tempfile.TemporaryDirectory() as classes:
        try:
            subprocess.run(["javac", "--release", "11", "-nowarn", "-cp", str(flink_dist[-1]), "-d", classes,
                            *map(str, sources)], check=True, capture_output=True, text=True)
        except FileNotFoundError as exc:
            raise RuntimeError("javac not found: a JDK (11 or later) builds the jobs' Kafka source helper") from exc
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"javac failed on {JAVA_SOURCES}:\n{exc.stderr}") from exc
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w") as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
            for compiled in sorted(Path(classes).rglob("*.class")):
                jar.write(compiled, compiled.relative_to(classes).as_posix())
        partial.replace(target)
    return target


def share_connector_classes(jar_urls: list[str]) -> None:
    """Let every thread serving the Python gateway load the connector jars' classes. Once per gateway.

    py4j looks a class up in the context class loader of the Java thread serving the call, and its Python
    side keeps a pool of connections, each served by a thread of its own. PyFlink adds ``pipeline.jars``
    to the loader of one of them; a call that another Python thread's concurrent use pushed onto a new
    connection finds no ``KafkaSource`` (it gets a ``JavaPackage``). A new connection's thread inherits
    the loader of the server thread that accepted it, so one loader is set there and on the threads
    serving already, before any connector class is loaded (two loaders would make two unrelated copies
    of each class). PyFlink then finds the jars in the current loader and adds none of its own.
    """
    global _shared_with
    from pyflink.java_gateway import get_gateway

    gateway = get_gateway()
    if _shared_with is gateway:
        return
    jvm = gateway.jvm
    urls = gateway.new_array(jvm.java.net.URL, len(jar_urls))
    for index, url in enumerate(jar_urls):
        urls[index] = jvm.java.net.URL(url)
    loader = jvm.java.net.URLClassLoader(urls, jvm.ClassLoader.getSystemClassLoader())
    for thread in jvm.Thread.getAllStackTraces().keySet():
        if _serves_gateway(thread.getStackTrace()):
            thread.setContextClassLoader(loader)
    _shared_with = gateway


def _serves_gateway(trace: Any) -> bool:
    """Whether a Java stack (a thread's, outermost frame last) is py4j's server or one of its connections."""
    outer = [trace[index].getClassName() for index in range(max(0, len(trace) - 2), len(trace))]
    return any(name.endswith(("py4j.GatewayServer", "py4j.GatewayConnection")) for name in outer)


def patch_pyflink_kafka() -> None:
    """Make PyFlink's Kafka wrapper use the unshaded kafka-clients classes. Idempotent."""
    global _patched
    if _patched:
        return
    from pyflink.datastream.connectors import kafka as pyflink_kafka
    from pyflink.java_gateway import get_gateway

    def to_j_topic_partition(self: Any) -> Any:
        return get_gateway().jvm.org.apache.kafka.common.TopicPartition(self._topic, self._partition)

    def to_j_offset_reset_strategy(self: Any) -> Any:
        strategy = get_gateway().jvm.org.apache.kafka.clients.consumer.OffsetResetStrategy
        return getattr(strategy, self.name)

    pyflink_kafka.KafkaTopicPartition._to_j_topic_partition = to_j_topic_partition
    pyflink_kafka.KafkaOffsetResetStrategy._to_j_offset_reset_strategy = to_j_offset_reset_strategy
    _patched = True


def kafka_sink_table_ddl(table: str, kafka: KafkaConfig, topic: str) -> str:
    """A Table API Kafka sink of ``(k BYTES, v BYTES)`` rows: raw key and value, at-least-once.

    PyFlink's DataStream KafkaSink cannot take the key from a field of the
    element; the SQL connector with the ``raw`` format can. At-least-once: an
    exactly-once sink would hold records until a checkpoint and break freshness.
    While the broker is away the sink keeps retrying a record for 5 minutes
    (``delivery.timeout.ms``, as the Cassandra writers do) before the task fails.
    """
    security = "".join(f"'properties.{key}' = {_sql_string(value)}, " for key, value in kafka.java_properties().items())
    return (
        f"CREATE TEMPORARY TABLE {table} (k BYTES, v BYTES) WITH ("
        f"'connector' = 'kafka', 'topic' = {_sql_string(topic)}, "
        f"'properties.bootstrap.servers' = {_sql_string(kafka.bootstrap_servers)}, {security}"
        "'key.format' = 'raw', 'key.fields' = 'k', 'value.format' = 'raw', 'value.fields-include' = 'EXCEPT_KEY', "
        "'sink.delivery-guarantee' = 'at-least-once', 'properties.linger.ms' = '5', "
        "'properties.delivery.timeout.ms' = '300000')"
    )


def _sql_string(text: str) -> str:
    """A SQL string literal: quotes doubled (a JAAS config holds double quotes; a password may hold anything).

    >>> _sql_string("it's")
    "'it''s'"
    """
    return "'" + text.replace("'", "''") + "'"


def source_properties(kafka: KafkaConfig, properties: dict[str, str] | None = None) -> dict[str, str]:
    """The Java client properties of the jobs' Kafka sources: discovery, security, then ``properties``."""
    return {"partition.discovery.interval.ms": "10000", **kafka.java_properties(), **(properties or {})}


def handed_off(stream: Any) -> Any:
    """``stream`` handed to the operators after it in a task of their own, each subtask's order kept.

    In thread mode, Java operators chained behind a Python operator run inside its emit call, while
    the interpreter lock every Python operator shares is held: the sink's (or SQL's) work would be
    taken from Python's budget. Flink chains only forward edges; ``rescale`` is not one, and at equal
    parallelism it connects each subtask to one subtask (no reordering, no shuffle).
    """
    return stream.rescale()


def write_to_topics(t_env: Any, kafka: KafkaConfig, streams: dict[str, Any], hand_off: bool = True) -> Any:
    """Send each ``(k, v)`` row stream to its topic (declared name -> stream) through a Kafka sink table.

    The inserts run as part of the DataStream job (attached); returns the statement set. With ``hand_off``
    each stream reaches its sink through ``rescale`` (see :func:`handed_off`); that changes the ids of
    the operators after it, so a job whose state was taken without it keeps it off.
    """
    from connectors.topics import TOPICS_BY_NAME

    statements = t_env.create_statement_set()
    for name, stream in streams.items():
        table = f"sink_{name.replace('-', '_')}"
        t_env.execute_sql(kafka_sink_table_ddl(table, kafka, TOPICS_BY_NAME[name].full_name(kafka)))
        statements.add_insert(table, t_env.from_data_stream(handed_off(stream) if hand_off else stream))
    statements.attach_as_datastream()
    return statements


def kafka_source(kafka: KafkaConfig, topics: list[str], group_id: str, from_earliest: bool = True,
                 properties: dict[str, str] | None = None) -> Any:
    """A KafkaSource of raw message values (bytes; a null value as zero bytes) over ``topics`` (full names)."""
    patch_pyflink_kafka()
    from pyflink.common.serialization import DeserializationSchema
    from pyflink.datastream.connectors.kafka import (
        KafkaOffsetResetStrategy,
        KafkaOffsetsInitializer,
        KafkaSource,
    )
    from pyflink.java_gateway import get_gateway

    start = (
        KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST) if from_earliest
        else KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.LATEST)
    )
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(kafka.bootstrap_servers)
        .set_topics(*topics)
        .set_group_id(group_id)
        .set_starting_offsets(start)
        .set_value_only_deserializer(DeserializationSchema(get_gateway().jvm.nextwatch.flink.NullAsEmptyBytes()))
    )
    # librdkafka options do not apply to the Java client; security is given in its words, and java-style
    # ``properties`` pass through
    for key, value in source_properties(kafka, properties).items():
        builder = builder.set_property(key, value)
    return builder.build()
