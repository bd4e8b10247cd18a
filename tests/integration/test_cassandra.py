"""The project's CQL and the catalog store on the real Cassandra."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from connectors.cassandra_store import CQL_DIR, apply_schema
from connectors.catalog_store import CatalogStore

EXAMPLE = Path(__file__).resolve().parents[2] / "infra" / "deploy" / "example.toml"


def test_schema_applies_once(cassandra_config: Any, cassandra_session: Any) -> None:
    assert apply_schema(cassandra_config) == []  # already applied by the fixture
    tables = {row.columnfamily_name for row in cassandra_session.execute(
        "SELECT columnfamily_name FROM system.schema_columnfamilies WHERE keyspace_name = %s",
        (cassandra_config.keyspace,))}
    assert {"titles", "schema_migrations"} <= tables


def test_a_migration_that_stopped_before_it_was_recorded_applies_again(cassandra_config: Any,
                                                                       cassandra_session: Any) -> None:
    # 012 adds columns (ALTER ... ADD is not idempotent): as if a run had added them and then died
    ks = cassandra_config.keyspace
    cassandra_session.execute(f"DELETE FROM {ks}.schema_migrations WHERE file = '012_item_stats_take.cql'")
    assert apply_schema(cassandra_config) == ["012_item_stats_take.cql"]
    columns = cassandra_session.cluster.metadata.keyspaces[ks].tables["item_stats"].columns
    assert {"impression_plays", "take_rate"} <= set(columns)
    assert apply_schema(cassandra_config) == []


def test_the_deployments_schema_job_builds_a_keyspace_from_its_config_map(
        cassandra_config: Any, cassandra_session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the rendered schema Job runs (``nextwatch schema apply --cql-dir``), over the files of the
    rendered ConfigMap, makes a new keyspace with every table of ``infra/cql``; a second run applies none."""
    import yaml

    from infra.cli import main

    out, cql = tmp_path / "manifests", tmp_path / "cql"
    assert main(["deploy", "render", "--config", str(EXAMPLE), "--out", str(out)]) == 0
    config_map = next(yaml.safe_load_all((out / "02-cql.yaml").read_text()))
    cql.mkdir()
    for name, text in config_map["data"].items():
        (cql / name).write_text(text)
    keyspace = f"schema_job_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("NEXTWATCH_CASSANDRA_KEYSPACE", keyspace)
    try:
        assert main(["schema", "apply", "--cql-dir", str(cql)]) == 0
        tables = {row.columnfamily_name for row in cassandra_session.execute(
            "SELECT columnfamily_name FROM system.schema_columnfamilies WHERE keyspace_name = %s", (keyspace,))}
        expected = {t for path in CQL_DIR.glob("*.cql")
                    for t in re.findall(r"CREATE TABLE IF NOT EXISTS \{keyspace\}\.(\w+)", path.read_text())}
        assert tables == expected | {"schema_migrations"}
        assert apply_schema(replace(cassandra_config, keyspace=keyspace), cql) == []
    finally:
        cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)


def test_catalog_item_round_trips(cassandra_config: Any, cassandra_session: Any, make_event: Any) -> None:
    store = CatalogStore(cassandra_session, cassandra_config.keyspace)
    item = make_event("catalog", title_id="it-roundtrip")
    assert store.upsert([item]) == 1
    assert store.get("it-roundtrip") == item


def test_an_older_snapshot_never_overwrites_a_newer_one(cassandra_config: Any, cassandra_session: Any,
                                                        make_event: Any) -> None:
    store = CatalogStore(cassandra_session, cassandra_config.keyspace)
    newer = make_event("catalog", title_id="it-order", title="New Title")
    older = make_event("catalog", title_id="it-order", title="Old Title",
                       updated_time_ms=newer.updated_time_ms - 60_000)
    store.upsert([newer])
    store.upsert([older])  # a replay of an old catalog message
    stored = store.get("it-order")
    assert stored is not None and stored.title == "New Title"
