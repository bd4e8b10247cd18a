"""The topology document names every topic and table the code declares."""

from __future__ import annotations

import re

from connectors.config import REPO_ROOT
from connectors.topics import TOPICS

DOC = (REPO_ROOT / "infra" / "topology.md").read_text()


def test_every_topic_is_documented() -> None:
    for spec in TOPICS:
        assert f"| `{spec.name}` |" in DOC, spec.name


def test_every_table_is_documented() -> None:
    tables = set()
    for path in (REPO_ROOT / "infra" / "cql").glob("*.cql"):
        tables |= set(re.findall(r"CREATE TABLE IF NOT EXISTS \{keyspace\}\.(\w+)", path.read_text()))
    assert tables, "no tables found in infra/cql"
    for table in tables | {"schema_migrations"}:
        assert f"| `{table}` |" in DOC, table


def test_the_erasure_section_says_how_erasure_reaches_every_topic_and_table() -> None:
    section = DOC.split("## Erasure", 1)[1].split("\n## ", 1)[0]
    tables = set()
    for path in (REPO_ROOT / "infra" / "cql").glob("*.cql"):
        tables |= set(re.findall(r"CREATE TABLE IF NOT EXISTS \{keyspace\}\.(\w+)", path.read_text()))
    named = {name for row in section.splitlines() if row.startswith("| `")
             for name in re.findall(r"`([\w-]+)`", row.split("|")[1])}
    assert {spec.name for spec in TOPICS} | tables | {"schema_migrations"} <= named
