"""``nextwatch serve`` latency, open loop, against the local stack (run `nextwatch stack up` first; no jobs run).

Workload ``pages-<N>``: N members (default 10,000) each get a homepage of ``--rows`` rows of
20 titles in a keyspace of its own (``nextwatch_bench``); requests ask for members drawn
Zipf(``--zipf``). A load generator in a process of its own sends requests on a fixed
schedule, ``--rate`` per second, whether or not earlier answers have come back (open loop:
a slow answer cannot slow the offered load down), over as many keep-alive connections as
it needs; each latency is counted from the request's scheduled send time.

Phases, one service each (``--workers`` processes):
1. the raw read (the driver's asynchronous partition read, as the read client makes it) at
   ``--rate``: the floor, and the reference the others are a ratio to;
2. the API at ``--rate`` with the cache (``cache_ttl_ms`` 250) and without (0);
3. saturation, cached: rising rates until p99 > 50 ms, an error, or the generator cannot offer
   the rate; the highest rate that held;
4. ``--pause-s`` of Cassandra frozen (SIGSTOP) under ``--rate`` cached: every request must be
   answered within 1 s (503 where Cassandra is needed) and all 200 again after it, no restart.

Each phase checks its premise: the rate offered per second (its lowest and highest second) and
the rate answered; a phase whose offered or answered rate fell short prints no latency figure.
Figures last, as name=value.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from benchmarks.feature_freshness import percentile
from benchmarks.homepage_read_latency import write_pages
from connectors.cassandra_store import apply_schema, connect
from connectors.config import CassandraConfig, KafkaConfig
from connectors.homepage_store import SELECT_HOMEPAGES, HomepageStore
from infra.process import RunRecord
from infra.serve.server import serve_process

BENCH_KEYSPACE = "nextwatch_bench"
SATURATION_P99_MS = 50.0
PAUSE_ANSWER_S = 1.0


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


@dataclass
class Phase:
    """One open-loop run: per request its scheduled time (s from start), latency (s) and status (0: no answer)."""

    name: str
    rate: float
    seconds: float
    scheduled: np.ndarray
    sent_lag: np.ndarray  # actual send time minus scheduled
    latency: np.ndarray
    status: np.ndarray

    def offered_per_second(self) -> tuple[int, int]:
        counts = np.bincount((self.scheduled + self.sent_lag).astype(int), minlength=int(self.seconds))
        whole = counts[:int(self.seconds)]
        return int(whole.min()), int(whole.max())

    def answered_share(self) -> float:
        return float((self.status > 0).mean())

    def kept_up(self) -> bool:
        """Offered as scheduled (every second within 10% of the rate, sends at most 10 ms late at p99) and
        everything answered."""
        low, high = self.offered_per_second()
        return (low >= 0.9 * self.rate and high <= 1.1 * self.rate and self.answered_share() >= 0.999
                and percentile(self.sent_lag * 1000, 0.99) <= 10.0)

    def per_second(self) -> str:
        """Answers by status, second by second (where the pause phase shows what happened when)."""
        seconds = self.scheduled.astype(int)
        return " ".join(f"{s}s:" + ",".join(f"{code}x{n}" for code, n in sorted(Counter(
            self.status[seconds == s].tolist()).items())) for s in range(int(self.seconds)))

    def premise(self) -> str:
        low, high = self.offered_per_second()
        return (f"{self.name}: offered {self.rate:g}/s for {self.seconds:g} s (per second {low}-{high}), "
                f"answered {self.answered_share():.1%}, send lag p99 {percentile(self.sent_lag * 1000, 0.99):.1f} ms"
                f" -> premise {'holds' if self.kept_up() else 'FAILS: no latency figure'}")

    def figures(self, prefix: str) -> str:
        if not self.kept_up():
            return f"{prefix}_kept_up=false"
        ms = self.latency * 1000
        return (f"{prefix}_p50_ms={percentile(ms, 0.5):.2f} {prefix}_p99_ms={percentile(ms, 0.99):.2f} "
                f"{prefix}_max_ms={ms.max():.2f}")

    def p99_ms(self) -> float:
        return percentile(self.latency * 1000, 0.99)


# --- the load generators, each run in a process of its own ---------------------------------------------------

async def _http_open_loop(port: int, paths: list[bytes], rate: float,
                          connections: int = 512) -> tuple[list[float], list[float], list[int]]:
    """Send ``paths`` at ``rate`` over a pool of keep-alive connections opened beforehand; a request waits for a
    free connection (counted in its latency, from its scheduled time) rather than opening one mid-run."""
    clock = time.perf_counter  # uvloop's loop.time() ticks in whole milliseconds
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    lag, latency, status = [0.0] * len(paths), [0.0] * len(paths), [0] * len(paths)

    async def one(i: int, path: bytes, scheduled: float) -> None:
        reader, writer = await idle.get()
        lag[i] = clock() - scheduled
        try:
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: bench\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            status[i] = int(head[9:12])
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            latency[i] = clock() - scheduled
            idle.put_nowait((reader, writer))

    start = clock() + 0.2
    tasks = []
    for i, path in enumerate(paths):
        scheduled = start + i / rate
        if scheduled > clock():
            await asyncio.sleep(scheduled - clock())
        tasks.append(asyncio.ensure_future(one(i, path, scheduled)))
    await asyncio.gather(*tasks)
    return lag, latency, status


def _run_http(port: int, paths: list[bytes], rate: float, out: Any) -> None:
    import uvloop

    out.send(uvloop.run(_http_open_loop(port, paths, rate)))


def _run_raw(cassandra: CassandraConfig, members: list[str], rate: float, out: Any) -> None:
    """The driver's asynchronous partition read (what the read client does per call), on the same schedule."""
    import threading

    session = connect(cassandra, cassandra.keyspace)
    statement = session.prepare(SELECT_HOMEPAGES.replace("{keyspace}", cassandra.keyspace))
    n = len(members)
    lag, latency, status = [0.0] * n, [0.0] * n, [0] * n
    done = threading.Semaphore(0)
    start = time.perf_counter() + 0.2

    def finish(i: int, scheduled: float, ok: bool) -> None:
        latency[i] = time.perf_counter() - scheduled
        status[i] = 200 if ok else 0
        done.release()

    for i, member in enumerate(members):
        scheduled = start + i / rate
        while (wait := scheduled - time.perf_counter()) > 0:
            time.sleep(min(wait, 0.001))
        lag[i] = time.perf_counter() - scheduled
        future = session.execute_async(statement, (member,), timeout=10)
        future.add_callbacks(lambda rows, i=i, s=scheduled: finish(i, s, bool(rows)),
                             errback=lambda exc, i=i, s=scheduled: finish(i, s, False))
    for _ in range(n):
        done.acquire(timeout=30)
    session.cluster.shutdown()
    out.send((lag, latency, status))


def open_loop(name: str, target: Any, args: tuple[Any, ...], rate: float, count: int) -> Phase:
    receive, send = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("spawn").Process(target=target, args=(*args, rate, send))
    process.start()
    lag, latency, status = receive.recv()
    process.join()
    scheduled = np.arange(count) / rate
    return Phase(name, rate, count / rate, scheduled, np.array(lag), np.array(latency), np.array(status))


# --- the service under test ---------------------------------------------------------------------------------------

@contextmanager
def service(cassandra: CassandraConfig, workers: int, cache_ttl_ms: int) -> Iterator[int]:
    with serve_process({**os.environ, "NEXTWATCH_CASSANDRA_KEYSPACE": cassandra.keyspace,
                        "NEXTWATCH_SERVE_WORKERS": str(workers),
                        "NEXTWATCH_SERVE_CACHE_TTL_MS": str(cache_ttl_ms)}) as (port, _):
        yield port


def server_histogram(port: int) -> dict[float, float]:
    """The homepage route's latency histogram from the service's /metrics: bucket bound (s) -> count so far."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("nextwatch_serve_request_seconds_bucket{") and 'route="homepage"' in line:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def server_p99_bound(before: dict[float, float], after: dict[float, float]) -> float:
    """The smallest bucket bound under which 99% of the requests between two readings were answered."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts.get(float("inf"), 0.0)
    return next((bound for bound, n in counts.items() if total and n >= 0.99 * total), float("inf"))


def request_paths(members: list[str], offset: int) -> list[bytes]:
    return [f"/v1/members/{m}/homepage?device=tv&utc_offset={offset}".encode() for m in members]


def evening_offset() -> int:
    """The UTC offset (minutes) at which it is evening now: the bucket the pages were written for."""
    hours = (21 - time.gmtime().tm_hour) % 24
    return (hours - 24 if hours > 14 else hours) * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase at --rate")
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--saturation", default="250,500,750,1000,1500,2000,3000,4000",
                        help="rates tried (cached), each for --step-seconds")
    parser.add_argument("--step-seconds", type=float, default=8.0)
    parser.add_argument("--pause-s", type=float, default=10.0, help="Cassandra frozen this long (0: skip)")
    parser.add_argument("--skip-write", action="store_true", help="the pages are already there")
    parser.add_argument("--settle-s", type=float, default=30.0, help="after writing, before measuring")
    args = parser.parse_args()

    cassandra = replace(CassandraConfig.load(), keyspace=BENCH_KEYSPACE)
    KafkaConfig.load()  # the service's catalog replica reads the local broker's catalog topic
    apply_schema(cassandra)
    if not args.skip_write:
        session = connect(cassandra, cassandra.keyspace)
        try:
            say(f"writing {args.members:,} homepages of {args.rows} rows to {BENCH_KEYSPACE}")
            write_pages(HomepageStore(session, cassandra.keyspace), args.members, args.rows)
        finally:
            session.cluster.shutdown()
        say(f"letting Cassandra flush and compact for {args.settle_s:g} s")
        time.sleep(args.settle_s)
    rng = np.random.default_rng(11)
    # Zipf over the members' ranks: the r-th most active member asks with probability proportional to r^-s
    weights = 1.0 / np.arange(1, args.members + 1) ** args.zipf

    def draw(count: int) -> list[str]:
        return [f"bench-user-{n}" for n in rng.choice(args.members, size=count, p=weights / weights.sum())]

    count = int(args.rate * args.seconds)
    offset = evening_offset()
    say(f"raw read at {args.rate:g}/s")
    raw = open_loop("raw read", _run_raw, (cassandra, draw(count)), args.rate, count)
    say(raw.premise())
    phases: dict[str, Phase] = {}
    server: dict[str, float] = {}  # the service's own p99 (its histogram's bucket bound), seconds
    for label, ttl in (("cached", 250), ("uncached", 0)):
        with service(cassandra, args.workers, ttl) as port:
            open_loop("warm-up", _run_http, (port, request_paths(draw(2000), offset)), 500.0, 2000)
            say(f"API {label} at {args.rate:g}/s")
            before = server_histogram(port)
            phases[label] = open_loop(f"API {label}", _run_http, (port, request_paths(draw(count), offset)),
                                      args.rate, count)
            server[label] = server_p99_bound(before, server_histogram(port))
            say(f"{phases[label].premise()}; the service's own p99 at most {server[label] * 1000:g} ms")

    saturation, saturation_note = 0.0, "none held"
    with service(cassandra, args.workers, 250) as port:
        open_loop("warm-up", _run_http, (port, request_paths(draw(2000), offset)), 500.0, 2000)
        for rate in (float(r) for r in args.saturation.split(",")):
            step_count = int(rate * args.step_seconds)
            step = open_loop(f"saturation {rate:g}/s", _run_http, (port, request_paths(draw(step_count), offset)),
                             rate, step_count)
            errors = int(((step.status == 0) | (step.status >= 500)).sum())
            say(f"{step.premise()}; p99 {step.p99_ms():.1f} ms, {errors} errors")
            low, _ = step.offered_per_second()
            if low < 0.95 * rate:
                saturation_note = f"generator-bound at {rate:g}/s"
                break
            if errors or step.p99_ms() > SATURATION_P99_MS or step.answered_share() < 0.999:
                saturation_note = f"p99 or errors past the limit at {rate:g}/s"
                break
            saturation, saturation_note = rate, "held"

    pause_figures = "pause=skipped"
    record = RunRecord.load("cassandra")
    if args.pause_s > 0 and record is not None:
        with service(cassandra, args.workers, 250) as port:
            total = args.pause_s + 20
            pause_count = int(args.rate * total)
            receive, send = multiprocessing.Pipe(duplex=False)
            process = multiprocessing.get_context("spawn").Process(
                target=_run_http, args=(port, request_paths(draw(pause_count), offset), args.rate, send))
            process.start()
            time.sleep(5.2)
            os.kill(record.pid, signal.SIGSTOP)
            say(f"Cassandra frozen for {args.pause_s:g} s under {args.rate:g}/s")
            try:
                time.sleep(args.pause_s)
            finally:
                os.kill(record.pid, signal.SIGCONT)
            lag, latency, status = receive.recv()
            process.join()
            pause = Phase("pause", args.rate, total, np.arange(pause_count) / args.rate, np.array(lag),
                          np.array(latency), np.array(status))
            during = (pause.scheduled >= 5) & (pause.scheduled < 5 + args.pause_s)
            last = pause.scheduled >= total - 5
            statuses = Counter(int(s) for s in pause.status[during])
            say(f"{pause.premise()}; during the pause {dict(statuses)}")
            say(f"pause, second by second: {pause.per_second()}")
            pause_figures = (f"pause_s={args.pause_s:g} pause_max_ms={pause.latency[during].max() * 1000:.0f} "
                             f"pause_within_1s={bool((pause.latency[during] <= PAUSE_ANSWER_S).all())} "
                             f"pause_503={statuses.get(503, 0)} pause_200={statuses.get(200, 0)} "
                             f"recovered={bool((pause.status[last] == 200).all())}")

    errors_5xx = sum(int((p.status >= 500).sum()) for p in phases.values())
    print(f"workload=pages-{args.members} rows_per_page={args.rows} zipf={args.zipf} rate={args.rate:g} "
          f"seconds={args.seconds:g} workers={args.workers} cpus={os.cpu_count()}")
    print(f"{raw.figures('raw')} {phases['cached'].figures('cached')} {phases['uncached'].figures('uncached')} "
          f"server_cached_p99_ms_at_most={server['cached'] * 1000:g} "
          f"server_uncached_p99_ms_at_most={server['uncached'] * 1000:g}")
    ratio = (f"uncached_p99_over_raw_p99={phases['uncached'].p99_ms() / raw.p99_ms():.2f}"
             if raw.kept_up() and phases["uncached"].kept_up() else "uncached_p99_over_raw_p99=n/a")
    print(f"{ratio} errors_5xx={errors_5xx} saturation_rps={saturation:g} saturation_stop=\"{saturation_note}\" "
          f"{pause_figures}")


if __name__ == "__main__":
    main()
