"""Freshness of the feature job's per-event rows: produce -> visible in Cassandra, under load.

A background thread produces the live synthetic load (:mod:`benchmarks.load`) at
a steady ``--rate`` events/s. Every ``--probe-every`` seconds a probe user's
PROGRESS event is produced with a new position; a poller reads that user's
continue-watching row until it shows it, and records produce -> visible for each
probe. Every 10 s the rate offered and the rate the job processed are printed; the
latency figures are printed only if the job kept up. Run against the local stack
(`nextwatch stack up`). Figures last, as name=value.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.load import LiveLoad, RateLog, Watched, latency_figures, wait_until, watch_job
from connectors.cassandra_store import apply_schema, connect
from connectors.config import CassandraConfig, KafkaConfig
from connectors.events import Context, PlayEvent
from connectors.feature_store import FeatureStore
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def now_ms() -> int:
    return int(time.time() * 1000)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Probe:
    """What one freshness benchmark measures: the job, the probe event, the row that shows it."""

    row: str
    start_job: Callable[[KafkaConfig, CassandraConfig, str], Watched]
    make_store: Callable[[Any, str], Any]
    event: Callable[[str, int], Any]  # (probe user, probe number) -> the event to produce
    visible: Callable[[Any, str, int], bool]  # (store, probe user, probe number) -> is it in Cassandra?


def descendants(pid: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(c) for c in children] + [d for c in children for d in descendants(int(c))]


def dump_threads(folder: Path, probe: int) -> bool:
    """jstack of the jobs' JVMs and py-spy of their Python (in the processes that started them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for pid in descendants(os.getpid()):
        command = Path(f"/proc/{pid}/comm").read_text().strip() if Path(f"/proc/{pid}/comm").exists() else ""
        if command == "java":
            with open(folder / f"probe-{probe}-jvm-{pid}.txt", "w") as out:
                subprocess.run(["jstack", str(pid)], stdout=out, check=False)
        elif command.startswith("python") and shutil.which("py-spy"):
            with open(folder / f"probe-{probe}-python-{pid}.txt", "w") as out:
                subprocess.run(["py-spy", "dump", "--pid", str(pid)], stdout=out, stderr=out, check=False)
    say(f"probe {probe} pending > 8 s: thread dumps in {folder}")
    return True


def measure(probe: Probe, description: str) -> None:
    """Live background load, one probe every ``--probe-every`` s, produce -> visible; figures last."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rate", type=float, default=1000.0, help="background events/s")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured period")
    parser.add_argument("--probe-every", type=float, default=0.25)
    parser.add_argument("--give-up", type=float, default=60.0, help="seconds before a probe counts as lost")
    parser.add_argument("--dump-threads", type=Path, help="folder for the job's JVM thread dumps (and, with "
                        "py-spy installed, its Python stacks) of probes slower than 8 s")
    args = parser.parse_args()

    kafka = replace(KafkaConfig.load(), topic_prefix=f"fresh-{uuid.uuid4().hex[:6]}.")
    cassandra = replace(CassandraConfig.load(), keyspace="nextwatch_bench")
    apply_schema(cassandra)
    created = ensure_topics(kafka)
    load = LiveLoad(kafka, args.rate)
    job = probe.start_job(kafka, cassandra, f"fresh-{uuid.uuid4().hex[:6]}")
    session = connect(cassandra, cassandra.keyspace)
    store = probe.make_store(session, cassandra.keyspace)
    probe_user = f"probe-{uuid.uuid4().hex[:6]}"
    latencies: list[float] = []
    slow_sends: list[float] = []  # produce + flush times over 1 s: the broker's side of a slow probe
    lost = 0
    try:
        with EventProducer(kafka) as producer:  # the whole path live before the load starts
            producer.send(probe.event(f"warm-{probe_user}", 1))
        took = wait_until(lambda: probe.visible(store, f"warm-{probe_user}", 1), 180, "the warm-up event")
        say(f"warm-up event visible after {took:.1f} s; starting the load")
        load.start()
        log = RateLog(load, [job]).start()
        say("warming up for 20 s under load (first checkpoints)")
        time.sleep(20)
        with EventProducer(kafka) as producer:
            number, deadline = 0, time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                number += 1
                sent_at = time.monotonic()
                producer.send(probe.event(probe_user, number))
                producer.flush()
                load.add()
                if time.monotonic() - sent_at > 1.0:
                    slow_sends.append(time.monotonic() - sent_at)
                dumped = False
                while time.monotonic() - sent_at < args.give_up:
                    if probe.visible(store, probe_user, number):
                        latencies.append((time.monotonic() - sent_at) * 1000)
                        break
                    time.sleep(0.005)
                    if args.dump_threads and not dumped and time.monotonic() - sent_at > 8:
                        dumped = dump_threads(args.dump_threads, number)
                else:  # never visible: counted as the give-up time (a lower bound)
                    latencies.append(args.give_up * 1000)
                    lost += 1
                time.sleep(args.probe_every)
                if len(latencies) % 40 == 0 and latencies:
                    say(f"{len(latencies)} probes, p50 {statistics.median(latencies):.0f} ms")
        verdict = log.finish()
    finally:
        load.stop()
        job.stop()
        session.cluster.shutdown()
        delete_topics(kafka, created)
    over = sorted(round(ms / 1000, 1) for ms in latencies if ms > 1000)
    say(f"probes over 1 s (s): {over}; produce+flush over 1 s (s): {[round(s, 1) for s in slow_sends]}")
    print(f"workload=synthetic-live rate={args.rate:.0f} probes={len(latencies)} row={probe.row} "
          f"over_1s={len(over)} lost_after_{args.give_up:.0f}s={lost} slow_sends={len(slow_sends)}")
    print(verdict.figures())
    print(latency_figures(verdict, f"p50_ms={percentile(latencies, 0.5):.0f} p99_ms={percentile(latencies, 0.99):.0f} "
                                   f"max_ms={max(latencies):.0f}"))


PROBE_CONTEXT = Context("probe", "TV", "US", 0)


def progress_event(user_id: str, number: int) -> PlayEvent:
    return PlayEvent(user_id=user_id, event_time_ms=now_ms(), context=PROBE_CONTEXT, title_id="probe-title",
                     action="PROGRESS", playback_id="probe", position_ms=number * 1000, duration_ms=10**9)


def progress_visible(store: FeatureStore, user_id: str, number: int) -> bool:
    rows = store.rows("get_cw", user_id)
    return bool(rows) and rows[0].position_ms >= number * 1000


def main() -> None:
    measure(Probe("continue_watching", lambda k, c, g: watch_job("features", k, c, g, own_process=True), FeatureStore,
                  progress_event, progress_visible), __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
