"""Produce a replay into Kafka at a chosen rate, showing progress."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.producer import EventProducer


@dataclass
class ReplayStats:
    events: int = 0
    seconds: float = 0.0
    by_type: Counter[str] = field(default_factory=Counter)
    first_event_ms: int | None = None
    last_event_ms: int | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def produce_events(events: Iterable[Any], producer: EventProducer, rate: float = 0.0,
                   progress: Callable[[str], None] | None = None, progress_every_s: float = 2.0) -> ReplayStats:
    """Send ``events`` in order, at most ``rate`` per second (0: unthrottled); flushes at the end."""
    stats = ReplayStats()
    started = last_report = time.monotonic()
    for event in events:
        producer.send(event)
        stats.events += 1
        stats.by_type[type(event).__name__] += 1
        t = getattr(event, "event_time_ms", None)
        if t is not None:
            stats.first_event_ms = t if stats.first_event_ms is None else min(stats.first_event_ms, t)
            stats.last_event_ms = t if stats.last_event_ms is None else max(stats.last_event_ms, t)
        if rate > 0:
            ahead = started + stats.events / rate - time.monotonic()
            if ahead > 0.002:
                time.sleep(ahead)
        if progress is not None and stats.events % 1000 == 0:
            now = time.monotonic()
            if now - last_report >= progress_every_s:
                last_report = now
                progress(f"{stats.events:,} events sent ({stats.events / (now - started):,.0f}/s)")
    producer.flush()
    stats.seconds = time.monotonic() - started
    if progress is not None:
        progress(f"{stats.events:,} events delivered in {stats.seconds:.1f}s ({stats.rate:,.0f}/s)")
    return stats


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", choices=["movielens", "synthetic"])
    parser.add_argument("--rate", type=float, default=0.0, help="events per second (default: unthrottled)")
    parser.add_argument("--speedup", type=float, default=1.0, help="event-time speed-up over the source's spacing")
    parser.add_argument("--limit", type=int, default=None, help="movielens: ratings to replay")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--data", type=Path, default=None,
                        help="movielens: a folder of <name>.inter/.item/.user files (default: MovieLens 100K)")
    parser.add_argument("--users", type=int, default=1000, help="synthetic: users")
    parser.add_argument("--titles", type=int, default=500, help="synthetic: titles")
    parser.add_argument("--sessions", type=int, default=10_000, help="synthetic: sessions")
    parser.add_argument("--days", type=int, default=7, help="synthetic: days of traffic")


def build_source(args: argparse.Namespace) -> Iterable[Any]:
    if args.source == "movielens":
        from infra.replay.movielens import MovieLensReplay, load_movielens

        return MovieLensReplay(load_movielens(args.data), seed=42 if args.seed is None else args.seed,
                               speedup=args.speedup, limit=args.limit)
    from infra.replay.synthetic import SyntheticLoad

    return SyntheticLoad(users=args.users, titles=args.titles, sessions=args.sessions, days=args.days,
                         seed=7 if args.seed is None else args.seed, speedup=args.speedup)


def progress_to_stderr(text: str) -> None:
    print(f"[replay] {text}", file=sys.stderr, flush=True)


def replay_command(args: argparse.Namespace) -> int:
    source = build_source(args)
    with EventProducer() as producer:
        stats = produce_events(source, producer, rate=args.rate, progress=progress_to_stderr)
    for name, count in sorted(stats.by_type.items()):
        print(f"{name:<14} {count:>10,}")
    print(f"{'total':<14} {stats.events:>10,}  in {stats.seconds:.1f}s ({stats.rate:,.0f} events/s)")
    return 0
