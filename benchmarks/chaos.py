"""Reliability under faults: the three jobs under a steady load while Cassandra, the broker and each job fail.

The jobs run as operators run them: ``nextwatch jobs run NAME``, each supervised in a process of its own.
A sender produces ratings at ``--rate`` events/s, round robin over ``--users`` members, each event id
``<member>-<n>`` (the member's n-th rating). The fault schedule, one after the other with
``--settle-s`` of load between them:

* ``cassandra-pause``: Cassandra frozen (SIGSTOP) for ``--cassandra-pause-s`` (120 s), then thawed;
* ``broker-pause``: the broker frozen for ``--broker-pause-s`` (30 s);
* ``cassandra-restart``: Cassandra stopped and started again, as ``nextwatch stack up`` does (on the
  ports it had);
* ``kill-features``, ``kill-learning``, ``kill-rows``: the job's process and everything it started
  killed with SIGKILL (its supervisor restarts it from its newest checkpoint);
* ``poison``: ``--poison`` messages no job can apply (junk, 200 KB, null values) among the load.

Per fault, printed last as ``name=value`` pairs: events offered while it and its settling lasted;
applied by each job, checked per event id in Cassandra (a member's profile and user-vector versions
count the distinct events applied, so ``<member>-<n>`` is applied when the version is at least n; the
homepage's ``last_event_id`` names the newest event it reflects); lost (offered minus applied, the
worst job); and the time to recover: from the end of the fault until every event offered before that
end is visible in every job's rows (``none`` when that did not happen before the next fault). The
premise is checked too: the rate offered per interval, and whether every job caught up at the end.
Run against the local stack (``nextwatch stack up``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from connectors.cassandra_store import connect
from connectors.config import CassandraConfig, KafkaConfig, state_dir
from connectors.consumer import read_snapshot
from connectors.events import Availability, CatalogItem, Context, RatingEvent
from connectors.feature_store import FeatureStore
from connectors.homepage_store import HomepageStore
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.model_store import ModelStore
from connectors.producer import EventProducer
from infra.process import RunRecord, child_pids

JOBS = ("features", "learning", "rows")


def say(text: str) -> None:
    print(f"[chaos] {text}", file=sys.stderr, flush=True)


@dataclass
class Sender:
    """Ratings at a steady rate, round robin over the members; when each was sent."""

    kafka: KafkaConfig
    users: list[str]
    titles: list[str]
    rate: float
    sent: list[tuple[float, str, int]] = field(default_factory=list)  # (monotonic time, member, n)
    per_interval: list[int] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Sender:
        self.thread = threading.Thread(target=self._run, name="chaos-sender", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        ctx = Context("tv-1", "TV", "US", 0)
        producer = EventProducer(self.kafka)
        counts = dict.fromkeys(self.users, 0)
        started, k, interval_start, in_interval = time.monotonic(), 0, time.monotonic(), 0
        while not self.stopping.is_set():
            due = started + k / self.rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            elif now - due > 1.0:  # fell behind (the broker paused): move the schedule, no burst
                started += now - due
            user = self.users[k % len(self.users)]
            counts[user] += 1
            n = counts[user]
            producer.send(RatingEvent(user, int(time.time() * 1000), ctx, self.titles[n % len(self.titles)],
                                      "THUMBS_UP", event_id=f"{user}-{n}"))
            self.sent.append((time.monotonic(), user, n))
            k, in_interval = k + 1, in_interval + 1
            if time.monotonic() - interval_start >= 10:
                self.per_interval.append(in_interval)
                interval_start, in_interval = time.monotonic(), 0
        producer.close()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()

    def required(self, before: float) -> dict[str, int]:
        """Per member: how many of their events were sent before ``before``."""
        need = dict.fromkeys(self.users, 0)
        for at, user, n in list(self.sent):
            if at < before:
                need[user] = max(need[user], n)
        return need


class Rows:
    """What each job shows per member in Cassandra: events applied (features, learning), newest reflected (rows)."""

    def __init__(self, cassandra: CassandraConfig) -> None:
        self.session = connect(cassandra, cassandra.keyspace)
        self.features = FeatureStore(self.session, cassandra.keyspace)
        self.models = ModelStore(self.session, cassandra.keyspace)
        self.pages = HomepageStore(self.session, cassandra.keyspace)

    def applied(self, user: str) -> dict[str, int]:
        profile = self.features.rows("get_profile", user)
        vectors = self.models.rows("get_user_vectors", user)
        newest = [int(page.last_event_id.rsplit("-", 1)[1]) for page in self.pages.homepages(user).values()
                  if page.last_event_id.startswith(user + "-")]
        return {"features": profile[0].version if profile else 0, "learning": vectors[0].version if vectors else 0,
                "rows": max(newest, default=0)}

    def caught_up(self, need: dict[str, int]) -> bool:
        return all(min(self.applied(user).values()) >= n for user, n in need.items() if n)


@dataclass
class Supervised:
    name: str
    process: subprocess.Popen[bytes]

    def job_process(self) -> int | None:
        """The job's process (the supervisor's child), while one runs."""
        return next(iter(child_pids(self.process.pid)), None)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def supervised(name: str, kafka: KafkaConfig, cassandra: CassandraConfig, tag: str, home: Path) -> Supervised:
    section = name.upper()
    env = {**os.environ, "NEXTWATCH_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "NEXTWATCH_CASSANDRA_KEYSPACE": cassandra.keyspace, f"NEXTWATCH_{section}_GROUP_ID": f"{name}-{tag}",
           "NEXTWATCH_FLINK_CHECKPOINT_INTERVAL_MS": "2000", "NEXTWATCH_FLINK_CHECKPOINT_DIR": str(home)}
    log = (state_dir() / "logs" / f"chaos-{name}-{tag}.log").open("wb")
    # SIGINT stops it as Ctrl-C would, even where this runs with SIGINT ignored (a shell's background job)
    process = subprocess.Popen([sys.executable, "-m", "infra.cli", "jobs", "run", name], env=env, stdout=log,
                               stderr=subprocess.STDOUT,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return Supervised(name, process)


def pid_of(service: str) -> int:
    record = RunRecord.load(service)
    if record is None:
        raise RuntimeError(f"{service} is not running: nextwatch stack up")
    return record.pid


def freeze(service: str, seconds: float) -> None:
    pid = pid_of(service)
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def restart_cassandra() -> None:
    from infra.services import CassandraNode

    node = CassandraNode()
    before = RunRecord.load(node.name)
    node.stop()
    node.start()
    after = RunRecord.load(node.name)
    if before is None or after is None or before.ports["native"] != after.ports["native"]:
        raise RuntimeError("Cassandra came back on another port: running jobs cannot find it")


@dataclass
class Fault:
    name: str
    act: Callable[[], None]
    started: float = 0.0
    ended: float = 0.0
    recovered_s: float | None = None


def wait_recovered(rows: Rows, need: dict[str, int], since: float, until: float) -> float | None:
    while time.monotonic() < until:
        if rows.caught_up(need):
            return time.monotonic() - since
        time.sleep(1.0)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="rating events/s offered")
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--settle-s", type=float, default=90.0)
    parser.add_argument("--cassandra-pause-s", type=float, default=120.0)
    parser.add_argument("--broker-pause-s", type=float, default=30.0)
    parser.add_argument("--poison", type=int, default=100)
    parser.add_argument("--faults", default="cassandra-pause,broker-pause,cassandra-restart,kill-features,"
                                            "kill-learning,kill-rows,poison")
    args = parser.parse_args()

    if RunRecord.load("cassandra") is None or RunRecord.load("kafka") is None:
        sys.exit("the local stack is not up (nextwatch stack up): the faults freeze its processes")
    tag = uuid.uuid4().hex[:6]
    kafka = replace(KafkaConfig.load(), topic_prefix=f"chaos-{tag}.")
    cassandra = CassandraConfig.load()
    created = ensure_topics(kafka)
    home = state_dir() / "flink" / f"chaos-{tag}"
    users = [f"chaos-{tag}-{n}" for n in range(args.users)]
    titles = [f"ct{n}-{tag}" for n in range(20)]
    with EventProducer(kafka) as producer:
        day_ago = int(time.time() * 1000) - 86_400_000
        for n, title in enumerate(titles):
            producer.send(CatalogItem(title, day_ago, f"Chaos {n}", 90, "ALL", Availability(day_ago),
                                      genres=["Drama" if n % 2 else "Comedy"], event_id=f"{title}-c"))
    jobs = {name: supervised(name, kafka, cassandra, tag, home) for name in JOBS}
    rows = Rows(cassandra)
    sender = Sender(kafka, users, titles, args.rate)
    poison_sent = 0

    def kill(name: str) -> Callable[[], None]:
        def act() -> None:
            pid = jobs[name].job_process()
            if pid is not None:
                os.killpg(pid, signal.SIGKILL)
        return act

    def poison() -> None:
        nonlocal poison_sent
        with EventProducer(kafka) as producer:
            topic = kafka.topic_prefix + "rating"
            for n in range(args.poison):
                value = [b"\x00junk", b"\xc3\x01" + b"z" * 200_000, None][n % 3]
                producer.send_encoded(topic, f"poison-{n}".encode(), value)
                poison_sent += 1

    acts = {"cassandra-pause": lambda: freeze("cassandra", args.cassandra_pause_s),
            "broker-pause": lambda: freeze("kafka", args.broker_pause_s), "cassandra-restart": restart_cassandra,
            "kill-features": kill("features"), "kill-learning": kill("learning"), "kill-rows": kill("rows"),
            "poison": poison}
    faults = [Fault(name, acts[name]) for name in args.faults.split(",")]
    try:
        say(f"jobs starting (logs: {state_dir() / 'logs'}/chaos-*-{tag}.log); warming up")
        sender.start()
        time.sleep(5.0)
        warm = wait_recovered(rows, sender.required(time.monotonic()), time.monotonic(), time.monotonic() + 300)
        if warm is None:
            sys.exit("the jobs did not catch up with the load within 5 minutes of starting: no premise")
        say(f"every job caught up after warm-up ({warm:.0f} s)")
        for fault in faults:
            say(f"fault {fault.name}")
            fault.started = time.monotonic()
            fault.act()
            fault.ended = time.monotonic()
            fault.recovered_s = wait_recovered(rows, sender.required(fault.ended), fault.ended,
                                               fault.ended + args.settle_s)
            say(f"{fault.name}: recovered in {fault.recovered_s:.0f} s" if fault.recovered_s is not None
                else f"{fault.name}: not recovered within {args.settle_s:.0f} s")
            time.sleep(max(0.0, fault.ended + args.settle_s - time.monotonic()))
        stopped = time.monotonic()
        sender.stop()
        final = wait_recovered(rows, sender.required(stopped + 1), stopped, stopped + 300)
        dead = read_snapshot(kafka.topic_prefix + "dead-letter", kafka, idle_s=3.0)
        state = {user: rows.applied(user) for user in users}
        figures = [f"rate={args.rate:g}", f"users={args.users}",
                   f"offered_per_10s_min={min(sender.per_interval, default=0)}",
                   f"offered_per_10s_max={max(sender.per_interval, default=0)}",
                   f"caught_up_at_end={'yes' if final is not None else 'no'}",
                   f"poison_sent={poison_sent}", f"dead_lettered={len(dead)}"]
        for i, fault in enumerate(faults):
            until = faults[i + 1].started if i + 1 < len(faults) else stopped
            window = [(user, n) for at, user, n in list(sender.sent) if fault.started <= at < until]
            applied = {job: sum(1 for user, n in window if state[user][job] >= n) for job in JOBS}
            lost = len(window) - min(applied.values())
            key = fault.name.replace("-", "_")
            figures += [f"{key}_offered={len(window)}", *(f"{key}_applied_{job}={applied[job]}" for job in JOBS),
                        f"{key}_lost={lost}",
                        f"{key}_recover_s={fault.recovered_s:.1f}" if fault.recovered_s is not None
                        else f"{key}_recover_s=none"]
        print(" ".join(figures))
    finally:
        if not sender.stopping.is_set():
            sender.stop()
        for service in ("cassandra", "kafka"):
            with contextlib.suppress(RuntimeError, ProcessLookupError):
                os.kill(pid_of(service), signal.SIGCONT)
        for job in jobs.values():
            job.stop()
        rows.session.cluster.shutdown()
        delete_topics(kafka, created)


if __name__ == "__main__":
    main()
