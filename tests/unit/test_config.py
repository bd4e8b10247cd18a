from __future__ import annotations

from pathlib import Path

import pytest

from connectors.config import CassandraConfig, KafkaConfig, read_config_file
from connectors.errors import ConfigError


def test_defaults_then_file_then_environment() -> None:
    file_data = {"kafka": {"bootstrap_servers": "file:9092", "partitions": 8, "options": {"linger.ms": 5}}}
    env = {"NEXTWATCH_KAFKA_BOOTSTRAP_SERVERS": "env:9092", "NEXTWATCH_KAFKA_OPT_compression__type": "zstd"}
    config = KafkaConfig.load(env=env, file_data=file_data)
    assert config.bootstrap_servers == "env:9092"
    assert config.partitions == 8
    assert config.options == {"linger.ms": "5", "compression.type": "zstd"}
    assert config.client_config(**{"linger.ms": 50, "acks": "all"})["linger.ms"] == "5"  # options win


def test_lists_and_numbers_from_environment() -> None:
    config = CassandraConfig.load(env={"NEXTWATCH_CASSANDRA_CONTACT_POINTS": "10.0.0.1, 10.0.0.2",
                                       "NEXTWATCH_CASSANDRA_PORT": "19042"}, file_data={})
    assert config.contact_points == ["10.0.0.1", "10.0.0.2"]
    assert config.port == 19042


def test_bad_values_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"\[cassandra\] port"):
        CassandraConfig.load(env={"NEXTWATCH_CASSANDRA_PORT": "ninety"}, file_data={})
    with pytest.raises(ConfigError, match="unknown keys"):
        KafkaConfig.load(env={}, file_data={"kafka": {"bootstrap": "x"}})


def test_config_file_is_read_from_nextwatch_config(tmp_path: Path) -> None:
    path = tmp_path / "nw.toml"
    path.write_text('[kafka]\nbootstrap_servers = "broker:1"\n')
    assert KafkaConfig.load(env={"NEXTWATCH_CONFIG": str(path)}).bootstrap_servers == "broker:1"
    path.write_text("[kafka\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_config_file(path)
