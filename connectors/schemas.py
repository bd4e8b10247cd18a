"""The schema store: every published version of every event contract.

``schemas/<subject>.v<N>.avsc`` files are the single source of truth. A file, once
published, is never edited: a change is a new file with the next version number, and
it must obey the evolution rules below (checked by :func:`check_full_compatibility`
and by the unit tests over every pair of consecutive versions).

Evolution rules (FULL compatibility, so old readers read new data and new readers
read old data):

1. A new field must have a default; a removed field must have had one.
2. A field's type may not change, except the Avro promotions int -> long -> float
   -> double and string <-> bytes; a union may gain branches only when the field
   has a default in both versions.
3. Enum symbols may be added only if the enum declares a ``default`` symbol
   (older readers map unknown symbols to it); symbols are never removed.
4. Renames are additions plus removals (aliases are not used).
5. ``schema_version`` in each record equals the file's ``N``.

Readers resolve a message's 64-bit fingerprint (single-object encoding) to the
writer's schema here, then read it with their own version through Avro schema
resolution, so a message written with an older or newer version is read, not
dead-lettered.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint as avro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from connectors.errors import SchemaStoreError, UnknownSchemaError

SCHEMAS_DIR_ENV = "NEXTWATCH_SCHEMAS_DIR"
_FILE_NAME = re.compile(r"^(?P<subject>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")


def default_schemas_dir() -> Path:
    """``$NEXTWATCH_SCHEMAS_DIR``, else the repository's ``schemas/`` folder."""
    configured = os.environ.get(SCHEMAS_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent / "schemas"


@dataclass(frozen=True)
class SchemaVersion:
    """One published version of one subject (an event type)."""

    subject: str
    version: int
    full_name: str
    fingerprint: bytes  # CRC-64-AVRO of the parsing canonical form, little-endian
    parsed: dict[str, Any]
    definition: dict[str, Any]
    path: Path

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()


def fingerprint_of(parsed_schema: dict[str, Any]) -> bytes:
    """The 8 bytes single-object encoding puts after its marker."""
    return bytes.fromhex(avro_fingerprint(to_parsing_canonical_form(parsed_schema), "CRC-64-AVRO"))


class SchemaStore:
    """All schema versions found in one or more folders, by subject and by fingerprint."""

    def __init__(self, directories: Iterable[Path] | None = None) -> None:
        dirs = list(directories) if directories is not None else [default_schemas_dir()]
        self._by_subject: dict[str, dict[int, SchemaVersion]] = {}
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        for directory in dirs:
            if not directory.is_dir():
                raise SchemaStoreError(f"schema folder {directory} does not exist")
            for path in sorted(directory.glob("*.avsc")):
                self.add(path)
        if not self._by_subject:
            raise SchemaStoreError(f"no <subject>.v<N>.avsc files in {', '.join(map(str, dirs))}")

    def add(self, path: Path) -> SchemaVersion:
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise SchemaStoreError(f"{path}: schema files are named <subject>.v<N>.avsc")
        try:
            definition = json.loads(path.read_text())
            parsed = parse_schema(definition, named_schemas={})
            if not isinstance(parsed, dict) or parsed.get("type") != "record":
                raise TypeError("a contract is an Avro record")
        except (ValueError, KeyError, TypeError) as exc:
            raise SchemaStoreError(f"{path}: not a valid Avro schema: {exc}") from exc
        subject, version = match["subject"], int(match["version"])
        if subject in self._by_subject and version in self._by_subject[subject]:
            raise SchemaStoreError(f"{path}: {subject} v{version} is already loaded")
        field_names = {f["name"] for f in definition.get("fields", [])}
        if "schema_version" not in field_names:
            raise SchemaStoreError(f"{path}: every contract carries a schema_version field")
        entry = SchemaVersion(
            subject=subject,
            version=version,
            full_name=parsed["name"],
            fingerprint=fingerprint_of(parsed),
            parsed=parsed,
            definition=definition,
            path=path,
        )
        clash = self._by_fingerprint.get(entry.fingerprint)
        if clash is not None:
            raise SchemaStoreError(f"{path}: same canonical schema as {clash.path}")
        self._by_subject.setdefault(subject, {})[version] = entry
        self._by_fingerprint[entry.fingerprint] = entry
        return entry

    @property
    def subjects(self) -> list[str]:
        return sorted(self._by_subject)

    def versions(self, subject: str) -> list[SchemaVersion]:
        return [v for _, v in sorted(self._subject(subject).items())]

    def latest(self, subject: str) -> SchemaVersion:
        versions = self._subject(subject)
        return versions[max(versions)]

    def get(self, subject: str, version: int) -> SchemaVersion:
        versions = self._subject(subject)
        if version not in versions:
            raise UnknownSchemaError(f"{subject} has no version {version} (have {sorted(versions)})")
        return versions[version]

    def by_fingerprint(self, fingerprint: bytes) -> SchemaVersion:
        entry = self._by_fingerprint.get(fingerprint)
        if entry is None:
            raise UnknownSchemaError(f"no published schema has fingerprint {fingerprint.hex()}")
        return entry

    def _subject(self, subject: str) -> dict[int, SchemaVersion]:
        if subject not in self._by_subject:
            raise UnknownSchemaError(f"unknown subject {subject!r} (have {self.subjects})")
        return self._by_subject[subject]


# ---------------------------------------------------------------------------
# Evolution rules, checked structurally (fastavro has no compatibility checker).

_PROMOTIONS = {
    ("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"),
    ("long", "double"), ("float", "double"), ("string", "bytes"), ("bytes", "string"),
}


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    return str(schema["type"])


def _can_read(writer: Any, reader: Any, path: str, problems: list[str]) -> None:
    """Append to ``problems`` every reason ``reader`` cannot read data written with ``writer``."""
    w_type, r_type = _type_name(writer), _type_name(reader)
    if w_type == "union" or r_type == "union":
        w_branches = writer if isinstance(writer, list) else [writer]
        r_branches = reader if isinstance(reader, list) else [reader]
        r_names = [_type_name(b) for b in r_branches]
        for branch in w_branches:
            name = _type_name(branch)
            if name in r_names:
                _can_read(branch, r_branches[r_names.index(name)], path, problems)
            elif not any((name, r) in _PROMOTIONS for r in r_names):
                problems.append(f"{path}: writer union branch {name} is not in the reader's union")
        return
    if w_type != r_type:
        if (w_type, r_type) not in _PROMOTIONS:
            problems.append(f"{path}: type changed from {w_type} to {r_type}")
        return
    if r_type == "record":
        w_fields = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            sub = f"{path}.{field['name']}" if path else field["name"]
            if field["name"] in w_fields:
                _can_read(w_fields[field["name"]]["type"], field["type"], sub, problems)
            elif "default" not in field:
                problems.append(f"{sub}: added or removed without a default")
    elif r_type == "enum":
        missing = set(writer["symbols"]) - set(reader["symbols"])
        if missing and "default" not in reader:
            problems.append(f"{path}: symbols {sorted(missing)} unknown to the reader and no enum default")
    elif r_type == "array":
        _can_read(writer["items"], reader["items"], f"{path}[]", problems)
    elif r_type == "map":
        _can_read(writer["values"], reader["values"], f"{path}{{}}", problems)
    elif r_type == "fixed" and writer["size"] != reader["size"]:
        problems.append(f"{path}: fixed size changed")


def compatibility_problems(old: SchemaVersion, new: SchemaVersion) -> list[str]:
    """Why ``old`` and ``new`` are not FULL compatible (empty when they are)."""
    problems: list[str] = []
    _can_read(old.parsed, new.parsed, "", problems)  # new reader, old data
    _can_read(new.parsed, old.parsed, "", problems)  # old reader, new data
    if new.version <= old.version:
        problems.append(f"version {new.version} does not follow {old.version}")
    return sorted(set(problems))


def check_full_compatibility(store: SchemaStore) -> dict[str, list[str]]:
    """Problems per ``subject vA -> vB`` over every pair of consecutive published versions."""
    report: dict[str, list[str]] = {}
    for subject in store.subjects:
        versions = store.versions(subject)
        for old, new in itertools.pairwise(versions):
            problems = compatibility_problems(old, new)
            if problems:
                report[f"{subject} v{old.version} -> v{new.version}"] = problems
    return report
