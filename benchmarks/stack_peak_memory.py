"""Peak memory of the whole local stack while the feature job runs a workload.

Samples, every 0.5 s, the resident memory (RSS) of the broker and Cassandra (from
the stack's run records) and of this process with its children (the Flink
mini-cluster JVM, where thread-mode Python also lives), while
the feature job's backfill (:mod:`benchmarks.backfill`) runs. Peak is the highest sum of one
sample. Run against the local stack (`nextwatch stack up`). Figures last.
"""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path

from benchmarks.backfill import TARGETS, run_backfill
from infra.process import RunRecord


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return [c for child in children for c in (child, *descendants(child))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=5_000)
    args = parser.parse_args()
    services = {name: record.pid for name in ("kafka", "cassandra") if (record := RunRecord.load(name))}
    peak = {"total": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            now = {name: rss_mb(pid) for name, pid in services.items()}
            now["job"] = rss_mb(os.getpid()) + sum(rss_mb(c) for c in descendants(os.getpid()))
            total = sum(now.values())
            if total > peak["total"]:
                peak.update(now, total=total)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = run_backfill(TARGETS["features"], args.ratings)
    stop.set()
    sampler.join()
    print(f"workload=movielens-{args.ratings} events={result.events}")
    print(" ".join(f"{name}_peak_rss_mb={value:.0f}" for name, value in peak.items()))


if __name__ == "__main__":
    main()
