"""The typed classes and the .avsc files describe the same contracts; published versions evolve safely."""

from __future__ import annotations

import json
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from connectors import events
from connectors.codec import EventCodec
from connectors.schemas import SchemaStore, check_full_compatibility, compatibility_problems, default_schemas_dir

STORE = SchemaStore()


def _schema_fields(schema: dict[str, Any]) -> dict[str, Any]:
    return {f["name"]: f["type"] for f in schema["fields"]}


def _enum_symbols(schema: Any, found: dict[str, list[str]]) -> dict[str, list[str]]:
    if isinstance(schema, dict):
        if schema.get("type") == "enum":
            found[schema["name"].split(".")[-1]] = schema["symbols"]
        for value in schema.values():
            _enum_symbols(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _enum_symbols(value, found)
    return found


@pytest.mark.parametrize("subject", sorted(events.EVENT_TYPES))
def test_typed_class_fields_match_schema(subject: str) -> None:
    schema = STORE.latest(subject).parsed
    cls = events.EVENT_TYPES[subject]
    assert {f.name for f in fields(cls)} == set(_schema_fields(schema)) - {"schema_version"}


def test_literal_types_list_the_schema_enum_symbols() -> None:
    symbols: dict[str, list[str]] = {}
    for subject in events.EVENT_TYPES:
        _enum_symbols(STORE.latest(subject).definition, symbols)
    for name, expected in symbols.items():
        assert list(typing.get_args(getattr(events, name))) == expected, name


def test_published_versions_are_full_compatible() -> None:
    assert check_full_compatibility(STORE) == {}


def test_file_name_and_fingerprint_rules(tmp_path: Path) -> None:
    (tmp_path / "play_event.v1.avsc").write_text((default_schemas_dir() / "play_event.v1.avsc").read_text())
    (tmp_path / "PlayEvent.avsc").write_text("{}")
    with pytest.raises(Exception, match=r"<subject>\.v<N>\.avsc"):
        SchemaStore([tmp_path])


def _v2(tmp_path: Path, mutate: Any) -> SchemaStore:
    """A store with play_event v1 as published plus a v2 made by ``mutate``."""
    v1 = json.loads((default_schemas_dir() / "play_event.v1.avsc").read_text())
    v2 = json.loads(json.dumps(v1))
    mutate(v2)
    for path in default_schemas_dir().glob("*.avsc"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "play_event.v2.avsc").write_text(json.dumps(v2))
    return SchemaStore([tmp_path])


def _add_field_with_default(schema: dict[str, Any]) -> None:
    schema["fields"].append({"name": "audio_language", "type": "string", "default": "und"})
    device = schema["fields"][5]["type"]["fields"][1]["type"]
    device["symbols"] = [*device["symbols"][:-1], "CONSOLE", "UNKNOWN"]


def test_v1_reader_reads_v2_data_and_back(tmp_path: Path, make_event: Any) -> None:
    store = _v2(tmp_path, _add_field_with_default)
    assert check_full_compatibility(store) == {}
    v1_writer = EventCodec(store, writer_versions={"play_event": 1})
    v2_writer = EventCodec(store)  # latest: v2
    v2_bytes = v2_writer.encode_record("play_event", {
        **{k: v for k, v in v1_writer.decode(v1_writer.encode(make_event("play"))).record.items()},
        "audio_language": "de",
        "context": {"device_id": "c1", "device_class": "CONSOLE", "country": "DE", "utc_offset_minutes": 60},
    })
    old_reader = v2_writer.decode(v2_bytes, reader_version=1)
    assert (old_reader.writer_version, old_reader.reader_version) == (2, 1)
    assert "audio_language" not in old_reader.record
    assert old_reader.record["context"]["device_class"] == "UNKNOWN"  # unknown symbol -> enum default
    new_reader = v2_writer.decode(v1_writer.encode(make_event("play")), reader_version=2)
    assert (new_reader.writer_version, new_reader.record["audio_language"]) == (1, "und")


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda s: s["fields"].append({"name": "bitrate", "type": "int"}), "bitrate: added or removed without"),
        (lambda s: s["fields"].pop(6), "title_id: added or removed without"),
        (lambda s: s["fields"][9].update(type="string"), "position_ms: type changed from long to string"),
        (lambda s: s["fields"][7]["type"]["symbols"].append("SEEK"), "symbols ['SEEK'] unknown"),
    ],
)
def test_breaking_changes_are_reported(tmp_path: Path, mutate: Any, problem: str) -> None:
    store = _v2(tmp_path, mutate)
    problems = compatibility_problems(store.get("play_event", 1), store.get("play_event", 2))
    assert any(problem in p for p in problems), problems
