"""A small Schema-Registry-compatible HTTP server, for tests: no registry server can be installed here.

It answers the calls that confluent-kafka's ``SchemaRegistryClient`` makes to register and look up
schemas (``POST /subjects/S/versions``, ``POST /subjects/S``, ``GET /schemas/ids/N``, ``GET /subjects``,
``GET /subjects/S/versions[/latest]``), with the registry's JSON error bodies. Like the registry under its
default BACKWARD level, it refuses a new version that cannot read the subject's latest one: a field added
without a default, or a field whose type changed other than by an Avro promotion. That is a simplified
check of top-level fields, not the registry's full schema resolution.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse

PROMOTIONS = {("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"), ("long", "double"),
              ("float", "double"), ("string", "bytes"), ("bytes", "string")}


def incompatibility(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why ``new`` cannot read what ``old`` wrote (top-level record fields), or None."""
    before = {f["name"]: f for f in old.get("fields", [])}
    for field in new.get("fields", []):
        known = before.get(field["name"])
        if known is None:
            if "default" not in field:
                return f"field {field['name']!r} was added without a default"
        elif isinstance(known["type"], str) and isinstance(field["type"], str):
            if known["type"] != field["type"] and (known["type"], field["type"]) not in PROMOTIONS:
                return f"field {field['name']!r} changed type from {known['type']} to {field['type']}"
        elif _is_enum(known["type"]) and _is_enum(field["type"]):
            lost = set(known["type"]["symbols"]) - set(field["type"]["symbols"])
            if lost and "default" not in field["type"]:
                return f"enum {field['name']!r} lost symbols {sorted(lost)} and has no default"
        # other nested types (unions, arrays, records) are not compared: a simplification
    return None


def _is_enum(avro_type: Any) -> bool:
    return isinstance(avro_type, dict) and avro_type.get("type") == "enum"


class RegistryState:
    def __init__(self) -> None:
        self.schemas: list[str] = []  # id - 1 -> canonical text
        self.subjects: dict[str, list[int]] = {}  # subject -> ids by version
        self.lock = threading.Lock()
        self.requests = 0

    def register(self, subject: str, text: str) -> tuple[int, dict[str, Any]]:
        canonical = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
        with self.lock:
            versions = self.subjects.setdefault(subject, [])
            if canonical in self.schemas and self.schemas.index(canonical) + 1 in versions:
                schema_id = self.schemas.index(canonical) + 1
                return 200, self._entry(subject, schema_id)
            if versions:
                why = incompatibility(json.loads(self.schemas[versions[-1] - 1]), json.loads(canonical))
                if why:
                    return 409, {"error_code": 409, "message": f"Schema being registered is incompatible with an "
                                                               f"earlier schema for subject \"{subject}\": {why}"}
            if canonical not in self.schemas:
                self.schemas.append(canonical)
            schema_id = self.schemas.index(canonical) + 1
            versions.append(schema_id)
            return 200, self._entry(subject, schema_id)

    def _entry(self, subject: str, schema_id: int) -> dict[str, Any]:
        return {"subject": subject, "id": schema_id, "version": self.subjects[subject].index(schema_id) + 1,
                "schema": self.schemas[schema_id - 1]}


def _handler(state: RegistryState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _not_found(self, what: str, code: int = 40401) -> None:
            self._reply(404, {"error_code": code, "message": f"{what} not found"})

        def do_GET(self) -> None:  # http.server calls it by this name
            state.requests += 1
            parts = [unquote(p) for p in urlparse(self.path).path.strip("/").split("/")]
            if parts[:2] == ["schemas", "ids"] and len(parts) == 3:
                schema_id = int(parts[2])
                if not 0 < schema_id <= len(state.schemas):
                    return self._not_found(f"Schema {schema_id}", 40403)
                return self._reply(200, {"schema": state.schemas[schema_id - 1]})
            if parts == ["subjects"]:
                return self._reply(200, sorted(state.subjects))
            if len(parts) >= 3 and parts[0] == "subjects" and parts[2] == "versions":
                ids = state.subjects.get(parts[1])
                if not ids:
                    return self._not_found(f"Subject {parts[1]}")
                if len(parts) == 3:
                    return self._reply(200, list(range(1, len(ids) + 1)))
                version = len(ids) if parts[3] == "latest" else int(parts[3])
                return self._reply(200, state._entry(parts[1], ids[version - 1]))
            return self._not_found(self.path)

        def do_POST(self) -> None:
            state.requests += 1
            parts = [unquote(p) for p in urlparse(self.path).path.strip("/").split("/")]
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if body.get("schemaType", "AVRO") != "AVRO":
                return self._reply(422, {"error_code": 42201, "message": "only AVRO here"})
            if len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
                status, answer = state.register(parts[1], body["schema"])
                return self._reply(status, answer)
            if len(parts) == 2 and parts[0] == "subjects":  # look a schema up under a subject
                canonical = json.dumps(json.loads(body["schema"]), sort_keys=True, separators=(",", ":"))
                ids = state.subjects.get(parts[1], [])
                if canonical in state.schemas and state.schemas.index(canonical) + 1 in ids:
                    return self._reply(200, state._entry(parts[1], state.schemas.index(canonical) + 1))
                return self._not_found("Schema", 40403)
            return self._not_found(self.path)

    return Handler


@contextmanager
def registry_stub() -> Iterator[tuple[str, RegistryState]]:
    """A running stub on a free loopback port: (its URL, its state)."""
    state = RegistryState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="registry-stub")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
