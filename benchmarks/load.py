"""Live load for the benchmarks, and the check of their premise: did the jobs keep up with it?

* :class:`LiveLoad` produces the synthetic load at a steady rate with live event times,
  in a thread. The load is streamed (its first event is ready in about two seconds) and
  the pacing clock starts at the first user event. When the sender falls behind its
  schedule (a slow broker, a busy machine), it moves the schedule instead of sending the
  deficit at once: what it offers has no bursts, and the time it lost is reported.
* :func:`watch_job` starts a job with its REST API on a port of its own, in this process's
  mini-cluster or, with ``own_process``, as ``nextwatch jobs run`` in a process of its own
  (as jobs are deployed: in the mini-cluster the Python of every job started from one
  process runs in that process), and waits until every task runs; the messages it has read (its
  ``events_in`` gauge) are polled from there while it runs. A benchmark then sends one
  warm-up event and waits for its effect (:func:`wait_until`) before the load starts:
  a job's operators open (and read their snapshots) after its tasks say they run, and a
  load started earlier would pile up behind that start-up.
* :class:`RateLog` samples, every interval, what the load offered and what each watched
  job processed, prints both per interval, and says at the end whether every job kept up:
  processed within 1% of offered three seconds after the load stops (the gauges are
  read through each job's REST API, which can answer a few seconds late while the job
  is busy: the per-interval rates show it as uneven). A benchmark prints a latency
  figure only when every job kept up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from connectors.config import CassandraConfig, KafkaConfig, state_dir
from connectors.producer import EventProducer
from infra.flink_cluster import job_metrics
from infra.pipeline import start_job
from infra.process import free_port
from infra.replay.synthetic import SyntheticLoad
from jobs.runtime import FlinkConfig, job_process_environment

KEPT_UP = 0.99  # processed / offered at the end
SCHEDULE_SLACK_S = 0.1  # a sender further behind than this moves its schedule rather than catch up


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def live_source(users: int = 2000, titles: int = 500, sessions: int = 200_000, seed: int = 3) -> Iterable[Any]:
    """The benchmarks' live workload (``synthetic-live``): 2,000 users, 500 titles, Zipf popularity."""
    return SyntheticLoad(users=users, titles=titles, sessions=sessions, seed=seed)


class LiveLoad:
    """The synthetic load produced at ``rate`` user events/s, event times stamped as they are sent.

    The catalog goes first, unpaced and before the clock. ``offered`` counts user events sent
    plus any the benchmark sends itself (:meth:`add`, for probes) on the topics the jobs read.
    """

    def __init__(self, kafka: KafkaConfig, rate: float, source: Iterable[Any] | None = None,
                 producer: Callable[[], Any] | None = None) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        self.rate = rate
        self.producer = producer or (lambda: EventProducer(kafka))
        self.source = source if source is not None else live_source()
        self.sent = 0
        self.extra = 0
        self.seconds_behind = 0.0  # schedule time given up instead of bursting
        self.started_at: float | None = None
        self.exhausted = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-load", daemon=True)

    @property
    def offered(self) -> int:
        return self.sent + self.extra

    def add(self, events: int = 1) -> None:
        self.extra += events

    def start(self) -> LiveLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with self.producer() as producer:
            schedule = 0.0
            for event in self.source:
                if self._stop.is_set():
                    return
                if not hasattr(event, "user_id"):
                    producer.send(event)  # the catalog, before the clock starts
                    continue
                now = time.monotonic()
                if self.started_at is None:
                    producer.flush()
                    self.started_at = schedule = now = time.monotonic()
                due = schedule + self.sent / self.rate
                if now - due > SCHEDULE_SLACK_S:
                    schedule += now - due
                    self.seconds_behind += now - due
                elif due - now > 0.0005:
                    time.sleep(due - now)
                event.event_time_ms = int(time.time() * 1000)  # live traffic
                producer.send(event)
                self.sent += 1
            self.exhausted = True


@dataclass
class Watched:
    """A job whose processed count the benchmark follows; ``stop`` ends it."""

    name: str
    processed: Callable[[], float]
    stop: Callable[[], None]


def watch_job(name: str, kafka: KafkaConfig, cassandra: CassandraConfig, group_id: str,
              settings: Any = None, flink: FlinkConfig | None = None, own_process: bool = False) -> Watched:
    """Start job ``name`` with its REST API on a free port; its ``events_in`` (messages read and decoded).

    ``own_process``: ``nextwatch jobs run NAME`` in a process of its own, its settings from the config
    file and the environment (``settings`` and ``flink`` do not apply), its log under ``<state dir>/logs``.
    """
    flink = flink or FlinkConfig.load()
    port = free_port()
    rest = {"rest.port": str(port), "metrics.fetcher.update-interval": "500"}
    if own_process:
        job_id, stop = _job_process(name, kafka, cassandra, group_id, rest)
    else:
        flink = replace(flink, options={**flink.options, **rest})
        client = start_job(name, kafka, cassandra, settings=settings, flink=flink, group_id=group_id)
        job_id = str(client.get_job_id())

        def stop() -> None:
            client.cancel().result()

    wait_running(job_id, port)

    def processed() -> float:
        try:
            return job_metrics(job_id, {"events_in"}, port).get("events_in", 0.0)
        except OSError:  # the REST API not up yet
            return 0.0

    return Watched(name, processed, stop)


def _job_process(name: str, kafka: KafkaConfig, cassandra: CassandraConfig, group_id: str,
                 flink_options: dict[str, str], timeout_s: float = 120.0) -> tuple[str, Callable[[], None]]:
    """``nextwatch jobs run NAME`` in a process of its own; its job id (once submitted) and how to stop it."""
    section = {"features": "FEATURES", "learning": "LEARNING", "rows": "ROWS"}[name]
    env = {**job_process_environment(os.environ), "NEXTWATCH_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "NEXTWATCH_CASSANDRA_KEYSPACE": cassandra.keyspace, f"NEXTWATCH_{section}_GROUP_ID": group_id,
           **{"NEXTWATCH_FLINK_OPT_" + key.replace(".", "__"): value for key, value in flink_options.items()}}
    logs = state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"bench-{name}-{group_id}.log", "wb") as log:
        # SIGINT stops it as Ctrl-C would, even when this benchmark runs where SIGINT is ignored (a
        # background job of a shell), which its children would inherit
        # --once: the job itself, not supervised (a restart would hide a failure from the benchmark)
        process = subprocess.Popen([sys.executable, "-m", "infra.cli", "jobs", "run", name, "--once"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def stop() -> None:
        process.send_signal(signal.SIGINT)  # what Ctrl-C does: the job is cancelled
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    job_ids: list[str] = []

    def submitted() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"job {name} exited ({process.returncode}): see {logs}")
        try:
            url = f"http://127.0.0.1:{flink_options['rest.port']}/jobs/overview"
            with urllib.request.urlopen(url, timeout=5) as response:
                job_ids.extend(str(job["jid"]) for job in json.load(response)["jobs"])
        except (OSError, KeyError, ValueError):
            pass  # the mini-cluster not up yet
        return bool(job_ids)

    try:
        wait_until(submitted, timeout_s, f"job {name} submitted")
    except (RuntimeError, TimeoutError):
        stop()
        raise
    return job_ids[0], stop


def wait_running(job_id: str, rest_port: int, timeout_s: float = 120.0) -> None:
    """Until every task of the job runs, so that the load does not pile up behind the job's start-up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/jobs/{job_id}", timeout=5) as response:
                vertices = json.load(response)["vertices"]
            if vertices and all(v["status"] == "RUNNING" for v in vertices):
                return
        except (OSError, KeyError, ValueError):
            pass  # the REST API not up yet
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} was not running after {timeout_s:.0f} s")


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``check`` every 50 ms until it holds; the seconds it took (``TimeoutError`` naming ``what``)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what}: not after {timeout_s:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - started


def wait_for_pipeline(kafka: KafkaConfig, session: Any, keyspace: str, user_id: str, timeout_s: float = 240) -> float:
    """One play through the feature, learning and rows jobs: until ``user_id``'s homepage reflects it in both
    its own events and the learning job's update; the seconds it took."""
    from connectors.events import Context, PlayEvent
    from connectors.homepage_store import HomepageStore

    event = PlayEvent(user_id, int(time.time() * 1000), Context("warm-up", "TV", "US", 0), "warm-up-title", "STOP",
                      "warm-up", 600_000, 3_600_000, event_id=f"{user_id}-warm-up")
    with EventProducer(kafka) as producer:
        producer.send(event)
    pages = HomepageStore(session, keyspace)
    return wait_until(lambda: any(page.model_versions.get("learning_last_event") == event.event_id
                                  for page in pages.homepages(user_id).values()), timeout_s,
                      "a warm-up event through the pipeline")


@dataclass
class Interval:
    seconds: float
    offered_per_s: float
    processed_per_s: dict[str, float]


@dataclass
class Verdict:
    offered: int
    processed: dict[str, float]
    seconds: float
    seconds_behind: float
    intervals: list[Interval] = field(default_factory=list)

    @property
    def kept_up(self) -> bool:
        return all(count >= KEPT_UP * self.offered for count in self.processed.values())

    def figures(self) -> str:
        """``name=value`` pairs: offered and processed rates, the steadiness of the offer, the verdict."""
        measured = [i for i in self.intervals if i.seconds > 0]
        offers = [i.offered_per_s for i in measured] or [0.0]
        parts = [f"offered_per_s={self.offered / self.seconds if self.seconds else 0.0:.0f}",
                 f"offered_interval_min_per_s={min(offers):.0f}", f"offered_interval_max_per_s={max(offers):.0f}",
                 f"sender_behind_s={self.seconds_behind:.1f}"]
        for name, count in self.processed.items():
            parts.append(f"{name}_processed_per_s={count / self.seconds if self.seconds else 0.0:.0f}")
            parts.append(f"{name}_processed_share={count / max(1, self.offered):.3f}")
        parts.append(f"kept_up={'yes' if self.kept_up else 'no'}")
        return " ".join(parts)


class RateLog:
    """Every ``interval_s``: offered and processed events/s, printed as they come; the verdict at the end."""

    def __init__(self, load: LiveLoad, watched: list[Watched], interval_s: float = 10.0,
                 report: Callable[[str], None] = say) -> None:
        self.load, self.watched, self.interval_s, self.report = load, watched, interval_s, report
        self.intervals: list[Interval] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rate-log", daemon=True)

    def start(self) -> RateLog:
        self._thread.start()
        return self

    def _sample(self) -> tuple[float, int, dict[str, float]]:
        return time.monotonic(), self.load.offered, {w.name: w.processed() for w in self.watched}

    def _run(self) -> None:
        while self.load.started_at is None and not self._stop.wait(0.1):
            pass
        last = self._sample()
        while not self._stop.wait(self.interval_s):
            now = self._sample()
            seconds = now[0] - last[0]
            interval = Interval(seconds, (now[1] - last[1]) / seconds,
                                {name: (now[2][name] - last[2][name]) / seconds for name in now[2]})
            self.intervals.append(interval)
            elapsed = now[0] - (self.load.started_at or now[0])
            self.report(f"{elapsed:5.0f} s: offered {interval.offered_per_s:6.0f}/s; processed "
                        + ", ".join(f"{name} {rate:6.0f}/s" for name, rate in interval.processed_per_s.items()))
            last = now

    def finish(self, settle_s: float = 3.0) -> Verdict:
        """Stop the load, give the jobs ``settle_s`` (and their metrics one refresh), and judge."""
        self._stop.set()  # the intervals logged are whole ones, all under load
        self._thread.join(timeout=self.interval_s + 5)
        self.load.stop()
        seconds = time.monotonic() - (self.load.started_at or time.monotonic())
        time.sleep(settle_s)
        processed = {w.name: w.processed() for w in self.watched}
        verdict = Verdict(self.load.offered, processed, seconds, self.load.seconds_behind, self.intervals)
        if not verdict.kept_up:
            self.report("the jobs did not keep up with the offered load: no latency figure is reported")
        return verdict


def latency_figures(verdict: Verdict, figures: str) -> str:
    """``figures`` when every job kept up; otherwise the names with ``n/a`` and why."""
    if verdict.kept_up:
        return figures
    names = [pair.split("=", 1)[0] for pair in figures.split()]
    return " ".join(f"{name}=n/a" for name in names) + " latency_withheld=jobs_fell_behind"
