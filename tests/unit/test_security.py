"""TLS and SASL for every Kafka client, credentials and TLS for Cassandra: applied to each client's configuration
(no TLS broker or authenticating Cassandra is available here), refused by name when incomplete, never printed."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from connectors.config import CassandraConfig, KafkaConfig, load_section, redacted
from connectors.errors import ConfigError

CA = "/etc/ssl/certs/ca-certificates.crt"  # any PEM bundle: Debian's
SECURE = dict(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="app",
              sasl_password="pa'ss\"word", ssl_ca_location="/etc/kafka/ca.pem")


def secure_kafka(**changes: Any) -> KafkaConfig:
    return KafkaConfig(**{**SECURE, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(("settings", "named"), [
    ({"security_protocol": "TLS"}, "security_protocol must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "a", "sasl_password": "b"},
     "sasl_mechanism must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "a"},
     "SASL_SSL needs sasl_username and sasl_password"),
    ({"sasl_username": "a"}, "SASL settings are set but security_protocol is PLAINTEXT"),
    ({"ssl_ca_location": "/ca.pem"}, "ssl_ca_location is set but security_protocol is PLAINTEXT"),
])
def test_incomplete_kafka_security_is_refused_by_name(settings: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        KafkaConfig(**settings)  # type: ignore[arg-type]


def test_security_comes_from_the_environment_like_every_setting() -> None:
    env = {"NEXTWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "NEXTWATCH_KAFKA_SASL_MECHANISM": "PLAIN",
           "NEXTWATCH_KAFKA_SASL_USERNAME": "app", "NEXTWATCH_KAFKA_SASL_PASSWORD": "from-a-secret",
           "NEXTWATCH_CASSANDRA_USERNAME": "svc", "NEXTWATCH_CASSANDRA_PASSWORD": "also-secret"}
    kafka = load_section(KafkaConfig, "kafka", env=env, file_data={})
    cassandra = load_section(CassandraConfig, "cassandra", env=env, file_data={})
    assert kafka.client_config()["sasl.password"] == "from-a-secret" and cassandra.username == "svc"


def test_librdkafka_clients_get_the_security_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's producer, the consumers and the admin client build their settings through ``client_config``
    (so do the serving replicas and snapshots); each is constructed here with the settings captured."""
    import connectors.consumer
    import connectors.kafka_admin
    import connectors.producer

    made: list[dict[str, Any]] = []

    class Capture:
        def __init__(self, settings: dict[str, Any]) -> None:
            made.append(settings)

        def subscribe(self, topics: list[str]) -> None:
            pass

    for module, name in ((connectors.producer, "Producer"), (connectors.consumer, "Consumer"),
                         (connectors.kafka_admin, "AdminClient")):
        monkeypatch.setattr(module, name, Capture)
    monkeypatch.setattr(connectors.consumer, "wait_for_broker", lambda kafka: None)  # no broker here
    kafka = secure_kafka()
    connectors.producer.EventProducer(kafka, check_broker=False)
    connectors.consumer.EventConsumer(["t"], "g", kafka)
    connectors.kafka_admin.admin_client(kafka)
    assert len(made) == 3
    for settings in made:
        assert (settings["security.protocol"], settings["sasl.mechanisms"], settings["sasl.username"],
                settings["sasl.password"], settings["ssl.ca.location"]) == (
            "SASL_SSL", "SCRAM-SHA-512", "app", "pa'ss\"word", "/etc/kafka/ca.pem")
    # a component's own default never overrides security; an operator's option does, on purpose
    assert KafkaConfig(options={"security.protocol": "SSL"}).client_config()["security.protocol"] == "SSL"


def test_librdkafka_accepts_the_settings_as_named() -> None:
    """A real librdkafka client built with them: a misspelled property would be refused here."""
    from confluent_kafka import Producer

    Producer(secure_kafka(security_protocol="SASL_PLAINTEXT", ssl_ca_location="").client_config())
    Producer(secure_kafka(ssl_ca_location=CA).client_config())


def test_the_jobs_java_sources_and_sinks_get_the_security_settings() -> None:
    from connectors.flink_kafka import kafka_sink_table_ddl, source_properties

    kafka = secure_kafka()
    source = source_properties(kafka, {"client.id.prefix": "x"})
    assert source["security.protocol"] == "SASL_SSL" and source["sasl.mechanism"] == "SCRAM-SHA-512"
    assert source["sasl.jaas.config"] == ('org.apache.kafka.common.security.scram.ScramLoginModule required '
                                          'username="app" password="pa\'ss\\"word";')
    assert (source["ssl.truststore.type"], source["ssl.truststore.location"]) == ("PEM", "/etc/kafka/ca.pem")
    assert source["client.id.prefix"] == "x" and source["partition.discovery.interval.ms"] == "10000"
    ddl = kafka_sink_table_ddl("sink_t", kafka, "nextwatch.t")
    assert "'properties.security.protocol' = 'SASL_SSL'" in ddl
    assert "'properties.sasl.jaas.config' = 'org.apache.kafka.common.security.scram.ScramLoginModule required " \
           "username=\"app\" password=\"pa''ss\\\"word\";'" in ddl  # the quote doubled for SQL
    plain = kafka_sink_table_ddl("sink_t", KafkaConfig(), "nextwatch.t")
    assert "security" not in plain and "security.protocol" not in source_properties(KafkaConfig())


def test_cassandra_gets_credentials_and_tls() -> None:
    from cassandra.auth import PlainTextAuthProvider

    from connectors.cassandra_store import cluster_for, cluster_security

    config = CassandraConfig(username="svc", password="secret", ssl_ca_file=CA)
    settings = cluster_security(config)
    assert isinstance(settings["auth_provider"], PlainTextAuthProvider)
    assert settings["auth_provider"].username == "svc" and settings["auth_provider"].password == "secret"
    assert isinstance(settings["ssl_context"], ssl.SSLContext) and settings["ssl_context"].check_hostname
    unverified = cluster_security(CassandraConfig(ssl_ca_file=CA, ssl_verify_hostname=False))
    assert not unverified["ssl_context"].check_hostname
    cluster = cluster_for(config)  # what connect() uses: the driver holds both
    assert cluster.auth_provider.username == "svc" and cluster.ssl_context is not None
    assert cluster_security(CassandraConfig()) == {}
    with pytest.raises(ConfigError, match="username and password go together"):
        CassandraConfig(username="svc")
    with pytest.raises(ConfigError, match=r"\[cassandra\] ssl_ca_file /nope.pem"):
        cluster_security(CassandraConfig(ssl_ca_file="/nope.pem"))


def test_credentials_are_never_printed(tmp_path: Path) -> None:
    kafka, cassandra = secure_kafka(), CassandraConfig(username="svc", password="c-secret")
    for text in (repr(kafka), str(kafka), repr(cassandra), kafka.describe_security(), cassandra.describe_security(),
                 str(redacted(kafka.client_config())), str(redacted(kafka.java_properties()))):
        assert "pa'ss" not in text and "c-secret" not in text, text
    assert kafka.describe_security() == "SASL_SSL as app (SCRAM-SHA-512), CA /etc/kafka/ca.pem"
    assert cassandra.describe_security() == "as svc, no TLS"
    assert redacted({"ssl.key.password": "k", "sasl.username": "u"}) == {"ssl.key.password": "***",
                                                                          "sasl.username": "u"}
