"""The ASGI application behind ``nextwatch serve``: routes, parameters, caching, errors, metrics.

A plain ASGI callable rather than a framework: the routes are few and fixed, and per
request it does only the work the API needs (one dict lookup to route, the cached
body or one Cassandra read, orjson), which is what lets two workers on two cores
answer thousands of requests a second. The contract is ``docs/openapi.json``, built
by :mod:`infra.serve.openapi` and checked against the running service by a
property-based test.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol
from urllib.parse import parse_qsl

import orjson

from connectors.limits import ID_CHARS
from connectors.privacy import erasure_digest, is_member_id
from connectors.serving import ServingReads, ServingUnavailableError
from infra.serve.cache import TtlCache
from infra.serve.config import ServeConfig
from infra.serve.metrics import ServeMetrics
from infra.serve.responses import (
    Catalog,
    Names,
    cold_start_page,
    homepage_body,
    pick_page,
    picks_body,
    similar_body,
    title_body,
)
from jobs.context import context_bucket
from jobs.experiments.definition import MATURITY_LEVELS, TENURES, Experiment, Exposure

LOG = logging.getLogger("nextwatch.serve")
DEVICES = ("tv", "mobile", "web")
FALLBACKS = ("trending",)
UTC_OFFSETS = (-720, 840)  # minutes: UTC-12:00 to UTC+14:00
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/static/app.js": ("app.js", "text/javascript"),
          "/static/style.css": ("style.css", "text/css")}

Send = Callable[[dict[str, Any]], Awaitable[None]]
Reply = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers, body
Receive = Callable[[], Awaitable[dict[str, Any]]]


class Actions(Protocol):
    """The web page's buttons (``infra.serve.actions.DemoActions``): a POSTed action -> the answer's body."""

    async def answer(self, receive: Receive) -> bytes: ...


class ApiError(Exception):
    """An answer other than 200: its status, a code, a message and (for 422) the parameter named."""

    def __init__(self, status: int, code: str, message: str, parameter: str | None = None,
                 allow: str = "GET, HEAD") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.parameter = status, code, message, parameter
        self.allow = allow  # what a 405 names

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.parameter is not None:
            error["parameter"] = self.parameter
        return {"error": error}


def _invalid(parameter: str, message: str) -> ApiError:
    return ApiError(422, "invalid_parameter", f"{parameter}: {message}", parameter)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _id(parameter: str, raw: str) -> str:
    if not raw or len(raw) > ID_CHARS or _CONTROL.search(raw):
        raise _invalid(parameter, f"must be 1 to {ID_CHARS} characters, none of them a control character")
    return raw


def _int(query: dict[str, str], parameter: str, default: int, low: int, high: int) -> int:
    raw = query.get(parameter)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid(parameter, f"must be an integer from {low} to {high}, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise _invalid(parameter, f"must be an integer from {low} to {high}, got {value}")
    return value


def _choice(query: dict[str, str], parameter: str, choices: tuple[str, ...], default: str | None) -> str | None:
    raw = query.get(parameter)
    if raw is None:
        return default
    if raw.lower() not in choices:
        raise _invalid(parameter, f"must be one of {', '.join(choices)}, got {raw[:40]!r}")
    return raw.lower()


def _exact_choice(query: dict[str, str], parameter: str, choices: tuple[str, ...]) -> str | None:
    raw = query.get(parameter)
    if raw is not None and raw not in choices:
        raise _invalid(parameter, f"must be one of {', '.join(choices)}, got {raw[:40]!r}")
    return raw


@dataclass
class Answer:
    """A cached 200: its body, ETag, and the catalog version its availability filter saw."""

    body: bytes
    etag: str
    catalog_version: int
    source: Any  # what was read, to filter again when the catalog changes


def _etag(body: bytes) -> str:
    """A validator of the body: its length and CRC-32 (several times cheaper than a cryptographic hash of a
    20 KB page, and a client holding an ETag only ever compares it with the next version of the same URL)."""
    return f'"{len(body):x}-{zlib.crc32(body):08x}"'


def _matches(if_none_match: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


class ServeApp:
    """The API and the web page, one instance per worker process."""

    def __init__(self, config: ServeConfig, reads: ServingReads, catalog: Catalog, metrics: ServeMetrics,
                 actions: Actions | None = None, catalog_ok: Callable[[], bool] = lambda: True,
                 now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                 on_startup: Callable[[], None] | None = None, on_shutdown: Callable[[], None] | None = None,
                 experiments: Mapping[str, Experiment] | None = None, member_ids_only: bool = False,
                 erased: AbstractSet[str] | None = None) -> None:
        self.config = config
        self.member_ids_only = member_ids_only  # [privacy] pseudonymous_ids: an account id is refused, not looked up
        self.reads = reads
        self.catalog = catalog
        self.metrics = metrics
        self.actions = actions  # infra.serve.actions.DemoActions when [serve] demo_actions, else None
        self.experiments = {} if experiments is None else experiments  # the experiments topic, followed
        self.erased = set() if erased is None else erased  # digests of erased members (the erasures topic, followed)
        self._purged = 0  # how many erasures the cache has been purged for
        self.catalog_ok = catalog_ok
        self.now_ms = now_ms
        self.cache = TtlCache(config.cache_ttl_ms, config.cache_entries)
        self.names = Names(catalog)
        self._in_flight: dict[tuple[Any, ...], asyncio.Future[Answer]] = {}
        self.on_startup, self.on_shutdown = on_startup, on_shutdown
        self._static: dict[str, bytes] = {}

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        route, status = route_name(scope["path"]), 500
        try:
            status, headers, body = await self._answer(scope, receive)
        except ApiError as exc:
            status, headers, body = exc.status, self._error_headers(exc), orjson.dumps(exc.body())
        except Exception:  # never a stack trace to the client; the log has it
            LOG.exception("answering %s %s", scope.get("method"), scope.get("path"))
            status, headers = 500, [(b"cache-control", b"no-store")]
            body = orjson.dumps({"error": {"code": "internal", "message": "internal error; see the service log"}})
        if status != 304 and not any(h[0] == b"content-type" for h in headers):
            headers = [(b"content-type", b"application/json"), *headers]
        if scope.get("method") == "HEAD":
            body = b""
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        self.metrics.observe(route, status, time.perf_counter() - started)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.on_startup is not None:
                    await asyncio.get_running_loop().run_in_executor(None, self.on_startup)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.on_shutdown is not None:
                    self.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _error_headers(self, exc: ApiError) -> list[tuple[bytes, bytes]]:
        headers = [(b"cache-control", b"no-store")]
        if exc.status == 503:
            headers.append((b"retry-after", str(self.config.retry_after_s).encode()))
        if exc.status == 405:
            headers.append((b"allow", exc.allow.encode()))
        return headers

    async def _answer(self, scope: dict[str, Any], receive: Receive) -> Reply:
        path: str = scope["path"]
        method: str = scope["method"]
        parts = path.strip("/").split("/")
        if path == "/demo/actions":
            if self.actions is None:
                raise ApiError(404, "not_found", "demo actions are off ([serve] demo_actions = false)")
            if method != "POST":
                raise ApiError(405, "method_not_allowed", "POST only", allow="POST")
            return 200, _json_headers("no-store"), await self.actions.answer(receive)
        if method not in ("GET", "HEAD"):
            raise ApiError(405, "method_not_allowed", f"{method} is not allowed here; GET and HEAD are")
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        if path in STATIC:
            return 200, *self._static_file(path)
        if path == "/healthz":
            return await self._health()
        if path == "/metrics":
            return 200, [(b"content-type", self.metrics.content_type.encode())], self.metrics.render()
        if path == "/openapi.json":
            from infra.serve.openapi import openapi_document

            return 200, _json_headers("public, max-age=60"), orjson.dumps(openapi_document())
        if path == "/demo/config":
            return 200, _json_headers("no-store"), orjson.dumps(
                {"demo_actions": self.actions is not None})
        if path == "/demo/members":
            n = _int(query, "n", 20, 1, 200)
            return 200, _json_headers("no-store"), orjson.dumps(
                {"member_ids": await self._read(self.reads.some_members(n))})
        if len(parts) == 4 and parts[:2] == ["v1", "members"] and parts[3] in ("homepage", "picks"):
            member = self._member(parts[2])
            if parts[3] == "homepage":
                return await self._cached("homepage", scope, self._homepage_key(member, query), self._homepage)
            k = _int(query, "k", 10, 1, self.config.max_k)
            return await self._cached("picks", scope, ("picks", member, k), self._picks)
        if len(parts) == 4 and parts[:2] == ["v1", "members"] and parts[3] == "experiments":
            return self._assignments(self._member(parts[2]), query)
        if len(parts) == 2 and parts[0] == "experiments":
            return await self._report(_id("name", parts[1]))
        if len(parts) == 3 and parts[:2] == ["v1", "titles"]:
            title = _id("title_id", parts[2])
            return await self._cached("title", scope, ("title", title), self._title)
        if len(parts) == 4 and parts[:2] == ["v1", "titles"] and parts[3] == "similar":
            title = _id("title_id", parts[2])
            k = _int(query, "k", 10, 1, self.config.max_k)
            return await self._cached("similar", scope, ("similar", title, k), self._similar)
        raise ApiError(404, "not_found", f"no route {path[:200]}")

    def _member(self, raw: str) -> str:
        member = _id("member_id", raw)
        if self.member_ids_only and not is_member_id(member):
            raise _invalid("member_id", "must be a member id (m- and 32 hex digits): ids are pseudonymous here "
                                        "([privacy] pseudonymous_ids), so the API takes member ids only")
        self._purge_erased()
        return member

    def _is_erased(self, member: str) -> bool:
        return erasure_digest(member) in self.erased

    def _purge_erased(self) -> None:
        """Drop every cached answer of a member erased since the last purge (from the serving thread only)."""
        if len(self.erased) == self._purged:
            return
        self._purged = len(self.erased)
        self.cache.drop(self._of_erased_member)

    def _of_erased_member(self, key: Any) -> bool:
        """Whether a cache key is a member's answer (("homepage" or "picks", member, ...)) and they are erased."""
        return key[0] in ("homepage", "picks") and erasure_digest(key[1]) in self.erased

    def _assignments(self, member: str, query: dict[str, str]) -> Reply:
        from infra.serve.experiments import assignments_body

        device = _choice(query, "device", DEVICES, None)
        country = query.get("country")
        if country is not None and not re.fullmatch(r"[A-Z]{2}", country):
            raise _invalid("country", f"an ISO 3166-1 alpha-2 code in upper case, got {country[:40]!r}")
        exposure = Exposure(country, device.upper() if device else None,
                            _choice(query, "tenure", TENURES, None),
                            _exact_choice(query, "maturity", MATURITY_LEVELS))
        body = assignments_body(member, self.experiments, self.now_ms(), exposure)
        return 200, _json_headers("private, max-age=60"), orjson.dumps(body)

    async def _report(self, name: str) -> Reply:
        from infra.serve.experiments import report_page

        experiment = self.experiments.get(name)
        if experiment is None:
            raise ApiError(404, "not_found", f"no experiment {name[:100]!r}")
        page = report_page(experiment, await self._read(self.reads.experiment_rows(name)))
        return 200, [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-cache")], page

    def _homepage_key(self, member: str, query: dict[str, str]) -> tuple[Any, ...]:
        device = _choice(query, "device", DEVICES, "web")
        offset = _int(query, "utc_offset", 0, *UTC_OFFSETS)
        fallback = _choice(query, "fallback", FALLBACKS, None)
        return "homepage", member, context_bucket(self.now_ms(), offset, (device or "web").upper()), fallback

    async def _cached(self, route: str, scope: dict[str, Any], key: tuple[Any, ...],
                      read: Callable[[tuple[Any, ...]], Awaitable[Any]]) -> Reply:
        """The answer from this worker's cache (at most ``cache_ttl_ms`` old), else read; always filtered by the
        catalog's availability as it is now."""
        answer: Answer | None = self.cache.get(key)
        self.metrics.cache(route, answer is not None)
        if answer is None:
            answer = await self._read_once(route, key, read)
            if route in ("homepage", "picks") and self._is_erased(key[1]):
                self.cache.drop(lambda held: held == key)  # erased during the read, or answered as unknown
        elif answer.catalog_version != self.catalog.version:  # a title's window changed since: filter again
            answer = self._render(route, key, answer.source)
            self.cache.put(key, answer)
        if isinstance(answer.source, ApiError):
            raise answer.source
        max_age = self.config.member_max_age_s if route in ("homepage", "picks") else self.config.title_max_age_s
        scope_word = "private" if route in ("homepage", "picks") else "public"
        headers = [*_json_headers(f"{scope_word}, max-age={max_age}"), (b"etag", answer.etag.encode())]
        if_none_match = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"if-none-match"), None)
        if if_none_match is not None and _matches(if_none_match, answer.etag):
            return 304, [h for h in headers if h[0] != b"content-type"], b""
        return 200, headers, answer.body

    async def _read_once(self, route: str, key: tuple[Any, ...],
                         read: Callable[[tuple[Any, ...]], Awaitable[Any]]) -> Answer:
        """Read and render ``key``; requests for a key whose read is under way wait for that read instead of
        sending one of their own (a hot member's page is read once per worker, not once per request)."""
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            answer = self._render(route, key, await read(key))
            self.cache.put(key, answer)
            future.set_result(answer)
            return answer
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: waiters see it too, nobody else has to
            raise
        finally:
            del self._in_flight[key]

    def _render(self, route: str, key: tuple[Any, ...], source: Any) -> Answer:
        version, now = self.catalog.version, self.now_ms()
        if isinstance(source, ApiError):
            return Answer(b"", "", version, source)
        if route == "homepage":
            page, fallback = source
            body = homepage_body(key[1], page, self.catalog, self.names, now, fallback)
        elif route == "picks":
            body = picks_body(key[1], source, self.catalog, now, key[2])
        elif route == "similar":
            if self.catalog.closed(key[1], now):
                return Answer(b"", "", version, ApiError(404, "not_available", f"title {key[1]} is not available"))
            body = similar_body(key[1], source, self.catalog, now, key[2])
        else:
            item = self.catalog.item(key[1])
            if item is None:
                return Answer(b"", "", version, ApiError(404, "not_found", f"no title {key[1]} in the catalog"))
            if self.catalog.closed(key[1], now):
                return Answer(b"", "", version, ApiError(404, "not_available", f"title {key[1]} is not available"))
            body = title_body(item)
        data = orjson.dumps(body)
        return Answer(data, _etag(data), version, source)

    async def _read(self, awaitable: Awaitable[Any]) -> Any:
        try:
            return await awaitable
        except ServingUnavailableError as exc:
            self.metrics.cassandra_error()
            raise ApiError(503, "unavailable", f"the recommendations store did not answer in time: {exc}; "
                           f"retry in {self.config.retry_after_s} s") from exc

    async def _homepage(self, key: tuple[Any, ...]) -> Any:
        _, member, bucket, fallback = key
        # an erased member is answered as one never known (their rows are deleted too; this covers the time
        # until the rows job has handled the request)
        page = None if self._is_erased(member) else pick_page(await self._read(self.reads.homepages(member)), bucket)
        if page is not None:
            return page, None
        if fallback != "trending":
            return ApiError(404, "unknown_member", f"no homepage stored for member {member}; "
                            "?fallback=trending answers a cold-start page instead")
        return cold_start_page(bucket, await self._read(self.reads.trending()), self.now_ms()), "trending"

    async def _picks(self, key: tuple[Any, ...]) -> Any:
        picks = None if self._is_erased(key[1]) else await self._read(self.reads.top_picks(key[1]))
        return picks if picks is not None else ApiError(404, "unknown_member", f"no top picks for member {key[1]}")

    async def _similar(self, key: tuple[Any, ...]) -> Any:
        similar = await self._read(self.reads.similar(key[1]))
        if similar is None and self.catalog.item(key[1]) is None:
            return ApiError(404, "not_found", f"no title {key[1]}")
        return similar

    async def _title(self, key: tuple[Any, ...]) -> Any:
        return None  # answered from the catalog replica in _render

    async def _health(self) -> Reply:
        try:
            version, cassandra = await self.reads.ping(), True
        except ServingUnavailableError as exc:
            version, cassandra = str(exc), False
        catalog = self.catalog_ok()
        body = {"status": "ok" if cassandra and catalog else "unavailable",
                "cassandra": {"ok": cassandra, "detail": version},
                "catalog": {"ok": catalog, "titles": len(self.catalog)}}
        headers = _json_headers("no-store")
        if not (cassandra and catalog):
            headers.append((b"retry-after", str(self.config.retry_after_s).encode()))
            return 503, headers, orjson.dumps(body)
        return 200, headers, orjson.dumps(body)

    def _static_file(self, path: str) -> tuple[list[Any], bytes]:
        name, content_type = STATIC[path]
        if name not in self._static:
            self._static[name] = resources.files("infra.serve").joinpath("static", name).read_bytes()
        return [(b"content-type", content_type.encode()), (b"cache-control", b"no-cache")], self._static[name]


def route_name(path: str) -> str:
    """The metrics label of a path: its route's template name (bounded), "other" for no route.

    >>> route_name("/v1/members/u1/homepage"), route_name("/v1/titles/m1"), route_name("/nope")
    ('homepage', 'title', 'other')
    """
    parts = path.strip("/").split("/")
    if len(parts) == 4 and parts[:2] == ["v1", "members"] and parts[3] in ("homepage", "picks"):
        return parts[3]
    if len(parts) == 3 and parts[:2] == ["v1", "titles"]:
        return "title"
    if len(parts) == 4 and parts[:2] == ["v1", "titles"] and parts[3] == "similar":
        return "similar"
    if len(parts) == 4 and parts[:2] == ["v1", "members"] and parts[3] == "experiments":
        return "assignments"
    if len(parts) == 2 and parts[0] == "experiments":
        return "experiment_report"
    return _FIXED_ROUTES.get(path, "other")


_FIXED_ROUTES = {"/healthz": "healthz", "/metrics": "metrics", "/openapi.json": "openapi",
                 "/demo/members": "demo_members", "/demo/actions": "demo_actions", "/demo/config": "demo_config",
                 **dict.fromkeys(STATIC, "page")}


def _json_headers(cache_control: str) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"cache-control", cache_control.encode())]
