"""The web page's buttons (``POST /demo/actions``): real events to Kafka through the producer SDK.

Only with ``[serve] demo_actions = true``; the API itself is read-only. An action is
what a member's app would send: play (a playback starts), finish (it completes),
rate (stars), search (a query). The answer names the last event sent, which the
page then waits for in the member's homepage (``last_event_id``) to show how long
produce -> visible took.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import orjson

from connectors.availability import CatalogReplica
from connectors.config import KafkaConfig
from connectors.errors import NextwatchError
from connectors.events import Context, PlayEvent, RatingEvent, SearchEvent
from infra.serve.app import DEVICES, UTC_OFFSETS, ApiError, Receive

MAX_BODY = 4096  # an action is a few fields
ACTIONS = ("play", "finish", "rate", "search")


def _field(body: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ApiError(422, "invalid_parameter", f"{name}: expected {kind.__name__}, got {value!r:.40}", name)
    return value


def action_events(body: dict[str, Any], runtime_minutes: int, now_ms: int) -> list[Any]:
    """The events of one action (validated here; the SDK checks each event's bounds again when sending)."""
    action = _field(body, "action", str)
    if action not in ACTIONS:
        raise ApiError(422, "invalid_parameter", f"action: one of {', '.join(ACTIONS)}", "action")
    member = _field(body, "member_id", str)
    device = str(body.get("device") or "web").lower()
    if device not in DEVICES:
        raise ApiError(422, "invalid_parameter", f"device: one of {', '.join(DEVICES)}", "device")
    offset = body.get("utc_offset", 0)
    if not isinstance(offset, int) or not UTC_OFFSETS[0] <= offset <= UTC_OFFSETS[1]:
        raise ApiError(422, "invalid_parameter", f"utc_offset: minutes from {UTC_OFFSETS[0]} to {UTC_OFFSETS[1]}",
                       "utc_offset")
    context = Context(f"web-demo-{member}"[:128], device.upper(), "US", offset, "nextwatch-serve")  # type: ignore[arg-type]
    if action == "search":
        return [SearchEvent(member, now_ms, context, _field(body, "query", str))]
    title = _field(body, "title_id", str)
    duration = max(1, runtime_minutes) * 60_000
    if action == "rate":
        stars = _field(body, "stars", (int, float))  # type: ignore[arg-type]
        if not 1 <= stars <= 5:
            raise ApiError(422, "invalid_parameter", "stars: from 1 to 5", "stars")
        return [RatingEvent(member, now_ms, context, title, "STARS", float(stars))]
    playback = f"demo-{uuid.uuid4().hex[:12]}"
    start = PlayEvent(member, now_ms, context, title, "START", playback, 0, duration)
    if action == "play":
        return [start]
    return [start, PlayEvent(member, now_ms + 1, context, title, "COMPLETE", playback, duration, duration)]


class DemoActions:
    def __init__(self, kafka: KafkaConfig, catalog: CatalogReplica) -> None:
        self.kafka = kafka
        self.catalog = catalog
        self._producer: Any = None
        self._lock = threading.Lock()

    async def answer(self, receive: Receive) -> bytes:
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if len(raw) > MAX_BODY:
                raise ApiError(413, "too_large", f"an action is at most {MAX_BODY} bytes")
            if not message.get("more_body"):
                break
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError(422, "invalid_body", f"not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_body", "expected a JSON object")
        title = body.get("title_id")
        item = self.catalog.item(title) if isinstance(title, str) else None
        events = action_events(body, item.runtime_minutes if item else 90, int(time.time() * 1000))
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._send, events)
        except NextwatchError as exc:  # a bound the SDK refused, or the broker did not take it
            raise ApiError(422 if "InvalidEvent" in type(exc).__name__ else 503, "not_sent", str(exc)[:500]) from exc
        return orjson.dumps({"event_ids": [e.event_id for e in events], "last_event_id": events[-1].event_id,
                             "produced_ms": int(time.time() * 1000)})

    def _send(self, events: list[Any]) -> None:
        from connectors.producer import EventProducer

        with self._lock:
            if self._producer is None:
                self._producer = EventProducer(self.kafka, account_ids=False)  # the page knows member ids
            for event in events:
                self._producer.send(event)
            self._producer.flush(10.0)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5.0)
