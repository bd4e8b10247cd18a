"""The API's contract as an OpenAPI 3.0 document: served at ``/openapi.json``, kept in ``docs/openapi.json``.

Built here, beside the code it describes; a unit test checks the copy in ``docs/``
is current (``nextwatch serve --write-openapi docs/openapi.json`` writes it) and an
integration test checks the running service against it, property-based. ``/v1``
only ever adds fields: a client may rely on every field listed here staying.
"""

from __future__ import annotations

from typing import Any

from connectors.limits import ID_CHARS
from jobs.experiments.definition import MATURITY_LEVELS, TENURES

ID_PATTERN = "^[^/\\x00-\\x1f\\x7f]+$"  # no control character; "/" would be another path


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def _id_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "minLength": 1, "maxLength": ID_CHARS, "pattern": ID_PATTERN}}


def _k(max_k: int) -> dict[str, Any]:
    return {"name": "k", "in": "query", "required": False, "description": "how many titles (default 10)",
            "schema": {"type": "integer", "minimum": 1, "maximum": max_k, "default": 10}}


_ETAG = {"ETag": {"description": "the answer's version: send it back as If-None-Match", "schema": {"type": "string"}},
         "Cache-Control": {"description": "how long a client may keep the answer", "schema": {"type": "string"}}}
_IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False,
                  "description": "an ETag from an earlier answer: 304 when unchanged", "schema": {"type": "string"}}


def _errors(*statuses: int) -> dict[str, Any]:
    described = {404: "unknown member or title, or a title not available now",
                 422: "a bad parameter, named in error.parameter",
                 503: "the store did not answer in time: retry after Retry-After seconds"}
    answers = {str(s): _json(_ref("Error"), described[s]) for s in statuses}
    if 503 in statuses:
        answers["503"]["headers"] = {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}
    return answers


def _cached_get(summary: str, parameters: list[dict[str, Any]], schema: str, errors: tuple[int, ...],
                operation_id: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "operationId": operation_id, "parameters": [*parameters, _IF_NONE_MATCH],
                    "responses": {"200": _json(_ref(schema), "the answer", _ETAG),
                                  "304": {"description": "unchanged since the ETag sent"}, **_errors(*errors)}}}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or list(properties)}


_STR, _NUM, _INT = {"type": "string"}, {"type": "number"}, {"type": "integer"}
_NSTR = {"type": "string", "nullable": True}
_TIME = {"type": "string", "format": "date-time", "nullable": True}
_ARTWORK = _object({"artwork_id": _STR, "uri": _NSTR, "themes": {"type": "array", "items": _STR}})


def openapi_document(max_k: int = 100) -> dict[str, Any]:
    item = _object({"title_id": _STR, "name": _NSTR, "score": _NUM, "reason": _STR, "artwork": _ref("Artwork")})
    schemas = {
        "Error": _object({"error": _object({"code": _STR, "message": _STR, "parameter": _STR}, ["code", "message"])}),
        "Artwork": _ARTWORK,
        "HomepageItem": item,
        "HomepageRow": _object({"position": _INT, "row_id": _STR, "title": _STR, "presentation_token": _STR,
                                "items": {"type": "array", "items": _ref("HomepageItem")}}),
        "Homepage": _object({
            "member_id": _STR, "context": _STR, "served_context": _STR,
            "fallback": {"type": "string", "nullable": True, "enum": ["trending", None]},
            "generated_time": _TIME, "last_event_id": _STR,
            "model_versions": {"type": "object", "additionalProperties": _STR},
            "rows": {"type": "array", "items": _ref("HomepageRow")}}),
        "Pick": _object({"title_id": _STR, "name": _NSTR, "score": _NUM, "reason": _STR}),
        "Picks": _object({"member_id": _STR, "model_version": _STR, "version": _INT, "last_event_id": _STR,
                          "updated_time": _TIME, "items": {"type": "array", "items": _ref("Pick")}}),
        "SimilarTitle": _object({"title_id": _STR, "name": _NSTR, "score": _NUM}),
        "Similar": _object({"title_id": _STR, "model_version": _NSTR, "updated_time": _TIME,
                            "items": {"type": "array", "items": _ref("SimilarTitle")}}),
        "Title": _object({
            "title_id": _STR, "name": _STR, "release_year": {"type": "integer", "nullable": True},
            "runtime_minutes": _INT, "maturity_rating": _STR, "genres": {"type": "array", "items": _STR},
            "sub_genres": {"type": "array", "items": _STR}, "cast": {"type": "array", "items": _STR},
            "directors": {"type": "array", "items": _STR}, "tags": {"type": "array", "items": _STR},
            "synopsis": _STR, "artwork": {"type": "array", "items": _ref("Artwork")},
            "availability": _object({"available_from": _TIME, "available_until": _TIME,
                                     "countries": {"type": "array", "items": _STR}}),
            "updated_time": _TIME}),
        "Assignment": _object({
            "experiment": _STR, "layer": _STR, "version": _INT, "variant": _STR, "control": {"type": "boolean"},
            "overrides": {"type": "object", "additionalProperties": _STR},
            "eligibility": _object({key: {"type": "array", "items": _STR}
                                    for key in ("countries", "device_classes", "tenure", "maturity")})}),
        "Assignments": _object({"member_id": _STR, "assignments": {"type": "array", "items": _ref("Assignment")}}),
        "Health": _object({"status": {"type": "string", "enum": ["ok", "unavailable"]},
                           "cassandra": _object({"ok": {"type": "boolean"}, "detail": _STR}),
                           "catalog": _object({"ok": {"type": "boolean"},
                                               "titles": {"type": "integer", "nullable": True}})}),
    }
    member = _id_parameter("member_id", "the member's id (pseudonymous where the SDK makes it so)")
    title = _id_parameter("title_id", "the title's id")
    homepage_parameters = [
        member,
        {"name": "device", "in": "query", "required": False, "description": "the device class asking",
         "schema": {"type": "string", "enum": ["tv", "mobile", "web"], "default": "web"}},
        {"name": "utc_offset", "in": "query", "required": False,
         "description": "the member's offset from UTC in minutes: with the time now, the daypart",
         "schema": {"type": "integer", "minimum": -720, "maximum": 840, "default": 0}},
        {"name": "fallback", "in": "query", "required": False,
         "description": "trending: a cold-start page for a member with none stored, instead of 404",
         "schema": {"type": "string", "enum": ["trending"]}},
    ]
    exposure_parameters = [
        member,
        {"name": "device", "in": "query", "required": False,
         "description": "only experiments whose eligibility admits this device class",
         "schema": {"type": "string", "enum": ["tv", "mobile", "web"]}},
        {"name": "country", "in": "query", "required": False,
         "description": "only experiments whose eligibility admits this country (ISO 3166-1 alpha-2)",
         "schema": {"type": "string", "pattern": "^[A-Z]{2}$"}},
        {"name": "tenure", "in": "query", "required": False,
         "description": "only experiments whose eligibility admits this tenure", "schema": {"type": "string",
                                                                                           "enum": list(TENURES)}},
        {"name": "maturity", "in": "query", "required": False,
         "description": "only experiments whose eligibility admits this profile maturity limit",
         "schema": {"type": "string", "enum": list(MATURITY_LEVELS)}},
    ]
    paths = {
        "/v1/members/{member_id}/experiments": {"get": {
            "summary": "The running experiments whose buckets hold the member, with the variant they get when "
                       "eligible (a pure function of the member id and the experiment: no lookup)",
            "operationId": "assignments", "parameters": exposure_parameters,
            "responses": {"200": _json(_ref("Assignments"), "the member's assignments"), **_errors(422)}}},
        "/experiments/{name}": {"get": {
            "summary": "An experiment's report as a web page: lifts with intervals, CUPED, the sample-ratio check, "
                       "always-valid p-values, plots", "operationId": "experiment_report",
            "parameters": [_id_parameter("name", "the experiment's name")],
            "responses": {"200": {"description": "the report", "content": {"text/html": {"schema": _STR}}},
                          **_errors(404, 422, 503)}}},
        "/v1/members/{member_id}/homepage": _cached_get(
            "The member's homepage for their context now: rows of titles with artwork, reasons and scores",
            homepage_parameters, "Homepage", (404, 422, 503), "homepage"),
        "/v1/members/{member_id}/picks": _cached_get(
            "The member's top picks, best first", [member, _k(max_k)], "Picks", (404, 422, 503), "picks"),
        "/v1/titles/{title_id}/similar": _cached_get(
            "Titles watched with this one, most similar first", [title, _k(max_k)], "Similar", (404, 422, 503),
            "similar"),
        "/v1/titles/{title_id}": _cached_get(
            "A title as the catalog describes it now", [title], "Title", (404, 422), "title"),
        "/healthz": {"get": {"summary": "Cassandra and the catalog replica reachable", "operationId": "health",
                             "responses": {"200": _json(_ref("Health"), "both reachable"),
                                           "503": _json(_ref("Health"), "one is not")}}},
        "/metrics": {"get": {"summary": "Prometheus text: requests and latency per route, cache, Cassandra errors",
                             "operationId": "metrics",
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {"schema": _STR}}}}}},
    }
    return {"openapi": "3.0.3",
            "info": {"title": "nextwatch recommendations API", "version": "1",
                     "description": "Read-only answers from the tables the nextwatch jobs write. Errors are "
                                    "JSON with a code and a message."},
            "paths": paths, "components": {"schemas": schemas}}
