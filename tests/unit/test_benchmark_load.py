"""The benchmarks' live load: streamed, paced from its first event, never bursting; and the kept-up verdict."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from benchmarks.load import SCHEDULE_SLACK_S, LiveLoad, RateLog, Verdict, Watched, latency_figures
from connectors.config import KafkaConfig
from connectors.events import CatalogItem
from infra.replay.synthetic import SyntheticLoad


@dataclass
class Event:
    user_id: str
    event_time_ms: int = 0


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[float, Any]] = []

    def __enter__(self) -> RecordingProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def send(self, event: Any) -> None:
        self.sent.append((time.monotonic(), event))

    def flush(self) -> None:
        pass


def slow_source(events: int, stall_at: int, stall_s: float, catalog_s: float) -> Iterator[Any]:
    time.sleep(catalog_s)  # a slow start (what materializing the load used to cost)
    yield object()  # a catalog item: no user_id
    for n in range(events):
        if n == stall_at:
            time.sleep(stall_s)  # the sender falls behind (a busy machine)
        yield Event(f"u{n}")


def run_load(source: Iterator[Any], rate: float) -> tuple[LiveLoad, RecordingProducer]:
    producer = RecordingProducer()
    load = LiveLoad(KafkaConfig(), rate, source, producer=lambda: producer)
    load.start()
    deadline = time.monotonic() + 10
    while not load.exhausted and time.monotonic() < deadline:
        time.sleep(0.01)
    load.stop()
    return load, producer


def test_pacing_starts_at_the_first_event_and_a_stall_is_not_made_up_in_a_burst() -> None:
    rate = 200.0
    load, producer = run_load(slow_source(200, stall_at=100, stall_s=0.3, catalog_s=0.3), rate)
    times = [t for t, event in producer.sent if isinstance(event, Event)]
    assert load.sent == 200 and len(times) == 200
    # neither the slow start nor the stall is made up at once: no 50 ms sends more than the rate allows,
    # plus what a sender within its slack may catch up (a busy machine delays it that much now and then);
    # sending the stall's deficit would put 60 events in one window
    most = max(sum(1 for t in times if start <= t < start + 0.05) for start in times)
    assert most <= rate * (0.05 + SCHEDULE_SLACK_S) + 1
    assert load.seconds_behind >= 0.2  # the stall, given up and reported
    assert all(event.event_time_ms > 0 for _, event in producer.sent if isinstance(event, Event))


def test_the_synthetic_load_streams_its_first_event_without_building_the_rest() -> None:
    load = SyntheticLoad(users=2000, titles=500, sessions=200_000, days=100, seed=3)
    made = 0
    offset_ms = load.offset_ms

    def counted(u: int) -> int:  # called once per session start made
        nonlocal made
        made += 1
        return offset_ms(u)

    load.offset_ms = counted  # type: ignore[method-assign]
    first_user_event = next(e for e in load if not isinstance(e, CatalogItem))
    assert first_user_event.user_id.startswith("su")
    assert made <= 2 * 200_000 // 100  # at most two days of session starts held, not the whole load


def test_synthetic_event_times_never_decrease_and_never_pass_now() -> None:
    now = 1_700_000_000_000
    times = [e.event_time_ms for e in SyntheticLoad(users=30, titles=40, sessions=3000, days=3, seed=2, now_ms=now)
             if not isinstance(e, CatalogItem)]
    assert times == sorted(times) and max(times) <= now
    assert now - min(times) > 2 * 24 * 3600 * 1000


def test_a_job_kept_up_only_when_it_processed_what_was_offered() -> None:
    verdict = Verdict(offered=10_000, processed={"features": 9_950, "learning": 7_000}, seconds=10.0,
                      seconds_behind=0.0)
    assert not verdict.kept_up
    assert "learning_processed_per_s=700" in verdict.figures() and "kept_up=no" in verdict.figures()
    assert latency_figures(verdict, "p50_ms=12 p99_ms=40") == "p50_ms=n/a p99_ms=n/a latency_withheld=jobs_fell_behind"
    kept = Verdict(offered=10_000, processed={"features": 9_950}, seconds=10.0, seconds_behind=0.0)
    assert kept.kept_up and latency_figures(kept, "p50_ms=12") == "p50_ms=12"


def test_rate_log_reports_each_interval_and_judges_at_the_end() -> None:
    producer = RecordingProducer()
    load = LiveLoad(KafkaConfig(), 400.0, (Event(f"u{n}") for n in range(10_000)), producer=lambda: producer)
    half = Watched("slow", lambda: load.offered / 2, lambda: None)
    lines: list[str] = []
    load.start()
    log = RateLog(load, [half], interval_s=0.2, report=lines.append).start()
    time.sleep(0.7)
    verdict = log.finish(settle_s=0.1)
    assert len(log.intervals) >= 2 and all(i.offered_per_s == pytest.approx(400, rel=0.35) for i in log.intervals)
    assert any("slow" in line for line in lines) and not verdict.kept_up
    assert "no latency figure" in lines[-1]


def test_the_ceiling_operator_writes_one_coalesced_row_per_member() -> None:
    from benchmarks.ceiling import CountPerMember
    from connectors.events import Context, PlayEvent
    from tests.flink_fakes import FakeStores, OperatorHarness

    stores = FakeStores()
    harness = OperatorHarness(CountPerMember(stores, flush_ms=100), key=lambda event: event.user_id).open()
    context = Context("d", "TV", "US", 0)
    for n, user in enumerate(["u1", "u1", "u2", "u1"]):
        harness.process(PlayEvent(user, 1_000 + n, context, "t1", "PROGRESS", "pb", n, 10, event_id=f"e{n}"))
    assert stores.calls("write_user_features") == []  # nothing before the flush
    harness.advance(100)
    written = {args[0]: (args[1].version, args[2]) for args in stores.calls("write_user_features")}
    assert written == {"u1": (3, "e3"), "u2": (1, "e2")}
    harness.advance(100)
    assert len(stores.calls("write_user_features")) == 2  # no new events: no new rows
