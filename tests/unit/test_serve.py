"""The API (``infra/serve``) driven as an ASGI app through a fake of its reads: no Cassandra, no broker."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from connectors.availability import CatalogReplica
from connectors.config import REPO_ROOT, KafkaConfig
from connectors.errors import ConfigError
from connectors.events import ArtworkVariant, Availability
from connectors.experiment_store import MetricRow
from connectors.homepage_store import HomepageItem, HomepageRow, StoredPage, page_json
from connectors.serving import ServingReads, ServingUnavailableError, StoredPicks, StoredSimilar
from infra.serve.actions import DemoActions, action_events
from infra.serve.app import ServeApp
from infra.serve.cache import TtlCache
from infra.serve.config import ServeConfig
from infra.serve.metrics import ServeMetrics
from infra.serve.openapi import openapi_document
from jobs.context import context_bucket
from tests.factories import make_catalog_item, now_ms

NOW = now_ms()


class FakeReads(ServingReads):
    """What Cassandra would hold; counts reads; ``down`` makes every read unavailable."""

    def __init__(self) -> None:
        self.pages: dict[str, dict[str, StoredPage]] = {}
        self.picks: dict[str, StoredPicks] = {}
        self.similars: dict[str, StoredSimilar] = {}
        self.trend: list[str] = []
        self.experiment_sums: dict[str, list[MetricRow]] = {}
        self.reads = 0
        self.down = False
        self.broken = False

    def _read(self) -> None:
        self.reads += 1
        if self.down:
            raise ServingUnavailableError("Cassandra did not answer homepages (OperationTimedOut)")
        if self.broken:
            raise RuntimeError("a bug with a secret in it")

    async def homepages(self, member_id: str) -> dict[str, StoredPage]:
        self._read()
        return self.pages.get(member_id, {})

    async def top_picks(self, member_id: str) -> StoredPicks | None:
        self._read()
        return self.picks.get(member_id)

    async def similar(self, title_id: str) -> StoredSimilar | None:
        self._read()
        return self.similars.get(title_id)

    async def trending(self, scope: str = "global") -> list[str]:
        self._read()
        return list(self.trend)

    async def some_members(self, n: int) -> list[str]:
        self._read()
        return sorted(self.pages)[:n]

    async def experiment_rows(self, experiment: str) -> list[MetricRow]:
        self._read()
        return list(self.experiment_sums.get(experiment, []))

    async def ping(self) -> str:
        self._read()
        return "2.1.0"


def _page(member: str, bucket: str, titles: list[str], last_event_id: str = "e1") -> StoredPage:
    rows = (HomepageRow(0, "top_picks", "Top Picks for You",
                        tuple(HomepageItem(t, 1.0 - i / 10, f"{t}-art1", "because you like space")
                              for i, t in enumerate(titles)), "token-1"),
            HomepageRow(1, "trending", "Trending Now", (HomepageItem(titles[0], 0.5, "", "trending now"),)))
    return StoredPage(bucket, NOW - 1000, last_event_id, page_json(rows, {"learning_version": "7"}))


def _catalog(*title_ids: str) -> CatalogReplica:
    catalog = CatalogReplica(KafkaConfig())
    for n, title_id in enumerate(title_ids):
        catalog.put(make_catalog_item(
            title_id=title_id, title=f"Title {n}",
            artwork=[ArtworkVariant(f"{title_id}-art1", f"https://art.example/{title_id}.jpg", ["space", "dark"])]))
    return catalog


@pytest.fixture
def reads() -> FakeReads:
    return FakeReads()


@pytest.fixture
def catalog() -> CatalogReplica:
    return _catalog("t1", "t2", "t3")


@pytest.fixture
def make_app(reads: FakeReads, catalog: CatalogReplica) -> Any:
    def make(**settings: Any) -> ServeApp:
        return ServeApp(ServeConfig(**settings), reads, catalog, ServeMetrics(), now_ms=lambda: NOW)
    return make


def call(app: ServeApp, path: str, query: str = "", method: str = "GET",
         headers: dict[str, str] | None = None, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One request through the ASGI interface, as uvicorn makes it."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(),
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
    asyncio.run(app(scope, receive, send))
    start, answer = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, answer["body"]


def _bucket(device: str = "web", offset: int = 0) -> str:
    return context_bucket(NOW, offset, device.upper())


def _schema(name: str) -> dict[str, Any]:
    """An OpenAPI 3.0 schema of the document as JSON Schema (``nullable`` -> a null type; refs resolved)."""
    document = openapi_document()

    def convert(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return convert(document["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]])
            out = {k: convert(v) for k, v in node.items() if k != "nullable"}
            if node.get("nullable"):
                out["type"] = [node["type"], "null"]
            return out
        if isinstance(node, list):
            return [convert(v) for v in node]
        return node

    return convert(document["components"]["schemas"][name])


def test_homepage_answers_the_stored_page_named_from_the_catalog(make_app: Any, reads: FakeReads) -> None:
    reads.pages["u1"] = {_bucket("tv", 60): _page("u1", _bucket("tv", 60), ["t1", "t2"])}
    status, headers, body = call(make_app(), "/v1/members/u1/homepage", "device=tv&utc_offset=60")
    page = json.loads(body)
    assert status == 200
    jsonschema.validate(page, _schema("Homepage"))
    assert page["served_context"] == page["context"] == _bucket("tv", 60)
    assert page["fallback"] is None and page["last_event_id"] == "e1"
    first = page["rows"][0]
    assert (first["row_id"], first["presentation_token"]) == ("top_picks", "token-1")
    assert [(i["title_id"], i["name"]) for i in first["items"]] == [("t1", "Title 0"), ("t2", "Title 1")]
    assert first["items"][0]["artwork"] == {"artwork_id": "t1-art1", "uri": "https://art.example/t1.jpg",
                                            "themes": ["space", "dark"]}
    assert headers["cache-control"] == "private, max-age=1" and headers["etag"].startswith('"')


def test_a_page_of_another_bucket_is_served_when_the_asked_one_is_missing(make_app: Any, reads: FakeReads) -> None:
    reads.pages["u1"] = {"evening:tv": _page("u1", "evening:tv", ["t1"])}
    page = json.loads(call(make_app(), "/v1/members/u1/homepage", "device=mobile")[2])
    assert page["context"] == _bucket("mobile") and page["served_context"] == "evening:tv"


def test_etag_answers_304_until_the_page_changes(make_app: Any, reads: FakeReads) -> None:
    app = make_app(cache_ttl_ms=0)
    reads.pages["u1"] = {_bucket(): _page("u1", _bucket(), ["t1", "t2"])}
    _, headers, _ = call(app, "/v1/members/u1/homepage")
    status, again, body = call(app, "/v1/members/u1/homepage", headers={"If-None-Match": headers["etag"]})
    assert (status, body, again["etag"]) == (304, b"", headers["etag"])
    reads.pages["u1"] = {_bucket(): _page("u1", _bucket(), ["t2", "t1"], last_event_id="e2")}
    status, changed, _ = call(app, "/v1/members/u1/homepage", headers={"If-None-Match": headers["etag"]})
    assert status == 200 and changed["etag"] != headers["etag"]


def test_unknown_member_is_404_and_a_cold_start_page_with_fallback(make_app: Any, reads: FakeReads) -> None:
    reads.trend = ["t3", "t1"]
    status, headers, body = call(make_app(), "/v1/members/nobody/homepage")
    assert status == 404 and json.loads(body)["error"]["code"] == "unknown_member"
    assert headers["content-type"] == "application/json" and headers["cache-control"] == "no-store"
    status, _, body = call(make_app(), "/v1/members/nobody/homepage", "fallback=trending")
    page = json.loads(body)
    assert status == 200 and page["fallback"] == "trending" and page["served_context"] == "cold-start"
    assert [i["title_id"] for i in page["rows"][0]["items"]] == ["t3", "t1"]
    jsonschema.validate(page, _schema("Homepage"))


@pytest.mark.parametrize(("path", "query", "parameter"), [
    ("/v1/members/u1/picks", "k=0", "k"),
    ("/v1/members/u1/picks", "k=abc", "k"),
    ("/v1/titles/t1/similar", "k=101", "k"),
    ("/v1/members/u1/homepage", "device=fridge", "device"),
    ("/v1/members/u1/homepage", "utc_offset=9999", "utc_offset"),
    ("/v1/members/u1/homepage", "utc_offset=", "utc_offset"),
    ("/v1/members/u1/homepage", "fallback=popular", "fallback"),
    ("/v1/members/u1/homepage", "fallback=", "fallback"),
    ("/v1/members/" + "x" * 129 + "/homepage", "", "member_id"),
    ("/v1/members/a\x01b/picks", "", "member_id"),
    ("/v1/titles/" + "x" * 129, "", "title_id"),
])
def test_bad_parameters_are_422_naming_the_parameter(make_app: Any, path: str, query: str, parameter: str) -> None:
    status, _, body = call(make_app(), path, query)
    error = json.loads(body)["error"]
    assert status == 422 and error["parameter"] == parameter and error["message"].startswith(f"{parameter}: ")
    jsonschema.validate(json.loads(body), _schema("Error"))


def test_cassandra_down_is_503_with_retry_after(make_app: Any, reads: FakeReads) -> None:
    reads.down = True
    for path in ("/v1/members/u1/homepage", "/v1/members/u1/picks", "/v1/titles/t1/similar"):
        status, headers, body = call(make_app(), path)
        assert status == 503 and headers["retry-after"] == "1"
        assert json.loads(body)["error"]["code"] == "unavailable"
    status, headers, body = call(make_app(), "/healthz")
    assert status == 503 and json.loads(body)["cassandra"]["ok"] is False and headers["retry-after"] == "1"


def test_an_unexpected_failure_is_a_json_500_without_its_details(make_app: Any, reads: FakeReads) -> None:
    reads.broken = True
    status, _, body = call(make_app(), "/v1/members/u1/homepage")
    assert status == 500 and b"secret" not in body and b"Traceback" not in body
    assert json.loads(body)["error"]["code"] == "internal"


def test_the_cache_reads_once_per_ttl(reads: FakeReads, catalog: CatalogReplica) -> None:
    clock = [0.0]
    app = ServeApp(ServeConfig(cache_ttl_ms=250), reads, catalog, ServeMetrics(), now_ms=lambda: NOW)
    app.cache = TtlCache(250, 100, clock=lambda: clock[0])
    reads.pages["u1"] = {_bucket(): _page("u1", _bucket(), ["t1"])}
    for _ in range(5):
        assert call(app, "/v1/members/u1/homepage")[0] == 200
    assert reads.reads == 1
    clock[0] = 0.25
    call(app, "/v1/members/u1/homepage")
    assert reads.reads == 2


def test_an_erased_member_is_answered_as_unknown_and_their_cached_answers_go(reads: FakeReads,
                                                                              catalog: CatalogReplica) -> None:
    from connectors.config import KafkaConfig
    from infra.serve.erasures import ErasedMembersReplica

    erasures = ErasedMembersReplica(KafkaConfig())  # not started: what it applies, without a broker
    app = ServeApp(ServeConfig(cache_ttl_ms=60_000), reads, catalog, ServeMetrics(), now_ms=lambda: NOW,
                   erased=erasures.digests)
    for member in ("u1", "u2"):
        reads.pages[member] = {_bucket(): _page(member, _bucket(), ["t1"])}
        assert call(app, f"/v1/members/{member}/homepage")[0] == 200
        assert call(app, f"/v1/members/{member}/picks")[0] in (200, 404)
    assert {key[1] for key in app.cache.held_keys()} == {"u1", "u2"}
    assert erasures.add("u1") and not erasures.add("u1")
    status, _, body = call(app, "/v1/members/u2/homepage")  # any member's request purges the erased one's answers
    assert status == 200 and {key[1] for key in app.cache.held_keys()} == {"u2"}
    for route in ("homepage", "picks"):  # as a member never known, and not cached
        status, _, body = call(app, f"/v1/members/u1/{route}")
        assert status == 404 and json.loads(body)["error"]["code"] == "unknown_member"
    status, _, body = call(app, "/v1/members/u1/homepage", "fallback=trending")
    assert status == 200 and json.loads(body)["fallback"] == "trending"  # the cold-start page, nothing of theirs
    assert all("u1" not in key for key in app.cache.held_keys())


def test_a_withdrawn_title_leaves_a_cached_page_at_once(make_app: Any, reads: FakeReads,
                                                        catalog: CatalogReplica) -> None:
    app = make_app(cache_ttl_ms=60_000)
    reads.pages["u1"] = {_bucket(): _page("u1", _bucket(), ["t1", "t2"])}
    reads.picks["u1"] = StoredPicks(("t1", "t2"), (0.9, 0.8), ("a", "b"), "m1", 3, "e1", NOW)
    before = json.loads(call(app, "/v1/members/u1/homepage")[2])
    assert call(app, "/v1/members/u1/picks")[0] == 200
    withdrawn = catalog.item("t1")
    assert withdrawn is not None
    catalog.put(replace(withdrawn, updated_time_ms=withdrawn.updated_time_ms + 1,
                        availability=Availability(0, ["US"], NOW - 1)))
    after = json.loads(call(app, "/v1/members/u1/homepage")[2])
    picks = json.loads(call(app, "/v1/members/u1/picks")[2])
    assert reads.reads == 2  # both from the cache
    assert [i["title_id"] for i in before["rows"][0]["items"]] == ["t1", "t2"]
    assert [[i["title_id"] for i in r["items"]] for r in after["rows"]] == [["t2"]]  # the row left empty is gone
    assert [i["title_id"] for i in picks["items"]] == ["t2"]
    assert call(app, "/v1/titles/t1")[0] == 404 and call(app, "/v1/titles/t1/similar")[0] == 404


def test_picks_similar_and_titles(make_app: Any, reads: FakeReads) -> None:
    reads.picks["u1"] = StoredPicks(("t1", "t2", "t3"), (0.9, 0.8, 0.7), ("item_cf", "implicit_mf", "content"),
                                    "m1", 12, "e9", NOW)
    reads.similars["t1"] = StoredSimilar(("t2", "t3"), (0.5, 0.25), "m1", NOW)
    status, _, body = call(make_app(), "/v1/members/u1/picks", "k=2")
    picks = json.loads(body)
    assert status == 200 and [i["title_id"] for i in picks["items"]] == ["t1", "t2"] and picks["version"] == 12
    jsonschema.validate(picks, _schema("Picks"))
    similar = json.loads(call(make_app(), "/v1/titles/t1/similar", "k=5")[2])
    assert [(i["title_id"], i["name"]) for i in similar["items"]] == [("t2", "Title 1"), ("t3", "Title 2")]
    jsonschema.validate(similar, _schema("Similar"))
    assert json.loads(call(make_app(), "/v1/titles/t2/similar")[2])["items"] == []  # known title, none yet
    status, headers, body = call(make_app(), "/v1/titles/t2")
    title = json.loads(body)
    assert status == 200 and title["name"] == "Title 1" and headers["cache-control"] == "public, max-age=60"
    jsonschema.validate(title, _schema("Title"))
    assert call(make_app(), "/v1/members/nobody/picks")[0] == 404
    assert call(make_app(), "/v1/titles/unknown")[0] == 404
    assert call(make_app(), "/v1/titles/unknown/similar")[0] == 404


def test_health_metrics_methods_and_unknown_routes(make_app: Any, reads: FakeReads) -> None:
    app = make_app()
    status, _, body = call(app, "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok", "cassandra": {"ok": True, "detail": "2.1.0"},
                                                   "catalog": {"ok": True, "titles": 3}}
    call(app, "/v1/members/nobody/homepage")
    status, headers, body = call(app, "/metrics")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'nextwatch_serve_requests_total{route="homepage",status="404"} 1.0' in text
    assert 'nextwatch_serve_cache_lookups_total{result="miss",route="homepage"} 1.0' in text
    assert "nextwatch_serve_request_seconds_bucket" in text
    status, headers, body = call(app, "/v1/members/u1/homepage", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    status, _, body = call(app, "/v2/anything")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    assert call(app, "/demo/actions", method="POST", body=b"{}")[0] == 404  # demo actions are off


def test_the_page_is_served(make_app: Any) -> None:
    status, headers, body = call(make_app(), "/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"/static/app.js" in body
    assert call(make_app(), "/static/app.js")[0] == 200


def test_openapi_in_docs_is_the_served_one(make_app: Any) -> None:
    served = json.loads(call(make_app(), "/openapi.json")[2])
    kept = json.loads(Path(REPO_ROOT, "docs", "openapi.json").read_text())
    assert served == kept == json.loads(json.dumps(openapi_document())), \
        "docs/openapi.json is stale: nextwatch serve --write-openapi docs/openapi.json"


def test_demo_actions_become_the_events_an_app_would_send() -> None:
    finish = action_events({"action": "finish", "member_id": "u1", "title_id": "t1", "device": "tv",
                            "utc_offset": 60}, runtime_minutes=90, now_ms=NOW)
    assert [(e.action, e.position_ms) for e in finish] == [("START", 0), ("COMPLETE", 90 * 60_000)]
    assert finish[0].context.device_class == "TV" and finish[0].context.utc_offset_minutes == 60
    rate = action_events({"action": "rate", "member_id": "u1", "title_id": "t1", "stars": 5}, 90, NOW)
    assert rate[0].stars == 5.0 and rate[0].kind == "STARS"
    assert action_events({"action": "search", "member_id": "u1", "query": "space"}, 90, NOW)[0].query == "space"
    for body, parameter in (({"action": "dance", "member_id": "u1"}, "action"),
                            ({"action": "rate", "member_id": "u1", "title_id": "t1", "stars": 9}, "stars"),
                            ({"action": "play", "member_id": "u1", "title_id": 3}, "title_id"),
                            ({"action": "play", "member_id": "u1", "title_id": "t1", "device": "car"}, "device")):
        with pytest.raises(Exception, match=parameter) as caught:
            action_events(body, 90, NOW)
        assert caught.value.parameter == parameter  # type: ignore[attr-defined]


def test_concurrent_requests_for_one_page_read_it_once(make_app: Any, reads: FakeReads) -> None:
    reads.pages["u1"] = {_bucket(): _page("u1", _bucket(), ["t1"])}
    app = make_app(cache_ttl_ms=0)  # no cache: only the reads under way are shared
    slow = FakeReads.homepages

    async def homepages(self: FakeReads, member_id: str) -> dict[str, StoredPage]:
        await asyncio.sleep(0.05)
        return await slow(self, member_id)

    reads.homepages = homepages.__get__(reads)  # type: ignore[method-assign]
    reads.down = False

    async def many() -> list[int]:
        async def one() -> int:
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            await app({"type": "http", "method": "GET", "path": "/v1/members/u1/homepage", "query_string": b"",
                       "headers": []}, receive, send)
            return int(sent[0]["status"])
        return list(await asyncio.gather(*(one() for _ in range(20))))

    assert asyncio.run(many()) == [200] * 20
    assert reads.reads == 1
    reads.down = True
    assert [call(app, "/v1/members/u1/homepage")[0] for _ in range(2)] == [503, 503]  # a failure is not kept


class RecordingActions(DemoActions):
    """The page's actions with the producer replaced by a list."""

    def __init__(self, catalog: CatalogReplica) -> None:
        super().__init__(KafkaConfig(), catalog)
        self.sent: list[Any] = []

    def _send(self, events: list[Any]) -> None:
        self.sent.extend(events)


def test_demo_actions_through_the_app(reads: FakeReads, catalog: CatalogReplica) -> None:
    actions = RecordingActions(catalog)
    app = ServeApp(ServeConfig(), reads, catalog, ServeMetrics(), actions, now_ms=lambda: NOW)
    assert json.loads(call(app, "/demo/config")[2]) == {"demo_actions": True}
    body = json.dumps({"action": "finish", "member_id": "u1", "title_id": "t1"}).encode()
    status, _, answer = call(app, "/demo/actions", method="POST", body=body)
    sent = json.loads(answer)
    assert status == 200 and [e.action for e in actions.sent] == ["START", "COMPLETE"]
    assert sent["last_event_id"] == actions.sent[-1].event_id
    assert actions.sent[-1].duration_ms == 118 * 60_000  # the title's runtime, from the catalog replica
    status, headers, _ = call(app, "/demo/actions")
    assert status == 405 and headers["allow"] == "POST"
    assert call(app, "/demo/actions", method="POST", body=b"{not json")[0] == 422
    assert call(app, "/demo/actions", method="POST", body=b"x" * 5000)[0] == 413
    status, _, answer = call(app, "/demo/actions", method="POST", body=b'{"action": "rate", "member_id": "u1"}')
    assert status == 422 and json.loads(answer)["error"]["parameter"] == "title_id"


def test_serve_settings_come_from_the_environment_and_a_bad_one_is_named() -> None:
    config = ServeConfig.load(env={"NEXTWATCH_SERVE_PORT": "9000", "NEXTWATCH_SERVE_DEMO_ACTIONS": "true"},
                              file_data={})
    assert (config.port, config.demo_actions, config.cache_ttl_ms) == (9000, True, 250)
    with pytest.raises(ConfigError, match=r"\[serve\] workers: 0 is outside 1..64"):
        ServeConfig.load(env={"NEXTWATCH_SERVE_WORKERS": "0"}, file_data={})
    with pytest.raises(ConfigError, match=r"\[serve\] unknown keys \['cache_ttl'\]"):
        ServeConfig.load(env={}, file_data={"serve": {"cache_ttl": 5}})


def test_pages_of_both_stored_formats_are_read(make_app: Any, reads: FakeReads) -> None:
    from datetime import UTC, datetime

    from connectors.serving import stored_page

    generated = datetime.fromtimestamp((NOW - 1000) / 1000, tz=UTC).replace(tzinfo=None)
    current = stored_page((_bucket(), generated, "e2", page_json(
        [HomepageRow(0, "top_picks", "Top Picks", (HomepageItem("t1", 0.9, "t1-art1", "top pick: content"),))],
        {"rows": "v1"}), None, None, None, None, None, None, None, None))
    # written before the page column: parallel lists
    legacy = stored_page((_bucket("tv"), generated, "e1", None, ["top_picks", "trending"], ["Top Picks", "Trending"],
                          [1, 1], ["t2", "t3"], [0.8, 0.5], ["t2-a", "t3-a"], ["top pick: item_cf", "trending"],
                          {"rows": "v0"}))
    assert current.raw() == ([("top_picks", "Top Picks", [["t1", 0.9, "t1-art1", "top pick: content"]], "")],
                             {"rows": "v1"})
    assert legacy.raw() == ([("top_picks", "Top Picks", [["t2", 0.8, "t2-a", "top pick: item_cf"]], ""),
                             ("trending", "Trending", [["t3", 0.5, "t3-a", "trending"]], "")], {"rows": "v0"})
    reads.pages["u1"] = {legacy.context: legacy}
    page = json.loads(call(make_app(), "/v1/members/u1/homepage", "device=tv")[2])
    assert [r["row_id"] for r in page["rows"]] == ["top_picks", "trending"] and page["generated_time"] is not None


def test_a_member_assignments_and_an_experiment_report_page(reads: FakeReads, catalog: CatalogReplica) -> None:
    from jobs.experiments.assignment import variant_of
    from jobs.experiments.definition import Eligibility, Experiment, Variant
    from jobs.experiments.stats import Totals

    variants = (Variant("control"), Variant("more", 1.0, {"rows.diversity": "1"}))
    phones = Experiment("diversity", "ranking", "s", variants,
                        eligibility=Eligibility(device_classes=frozenset({"MOBILE"})), start_ms=NOW - 1000)
    old = Experiment("old", "artwork", "s2", (Variant("a"), Variant("b")), start_ms=0, stop_ms=NOW - 1)
    app = ServeApp(ServeConfig(), reads, catalog, ServeMetrics(), now_ms=lambda: NOW,
                   experiments={"diversity": phones, "old": old})
    status, headers, body = call(app, "/v1/members/m1/experiments")
    answer = json.loads(body)
    expected = variant_of(phones, "m1")
    assert status == 200 and expected is not None and answer["member_id"] == "m1"
    assert [(a["experiment"], a["variant"], a["eligibility"]["device_classes"]) for a in answer["assignments"]] == [
        ("diversity", expected.name, ["MOBILE"])]  # the stopped experiment is not listed
    jsonschema.validate(answer, _schema("Assignments"))
    assert json.loads(call(app, "/v1/members/m1/experiments", "device=tv")[2])["assignments"] == []
    assert len(json.loads(call(app, "/v1/members/m1/experiments", "device=mobile&country=US")[2])["assignments"]) == 1
    for query, parameter in (("device=phone", "device"), ("country=usa", "country"), ("tenure=old", "tenure"),
                             ("maturity=R", "maturity")):
        status, _, body = call(app, "/v1/members/m1/experiments", query)
        assert status == 422 and json.loads(body)["error"]["parameter"] == parameter
    # the report's page, from the stored sums
    reads.experiment_sums["diversity"] = [
        MetricRow(20_000, variant, "all", "ctr", tuple(vars(Totals.of([1] * 50 + [0] * 950, [1] * 1000)).values()))
        for variant in ("control", "more")]
    status, headers, page = call(app, "/experiments/diversity")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"Experiment diversity" in page and b"<svg" in page and b"1,000" in page
    status, _, body = call(app, "/experiments/nope")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    reads.down = True
    status, headers, _ = call(app, "/experiments/diversity")
    assert status == 503 and headers["retry-after"] == "1"
