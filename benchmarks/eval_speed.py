"""How long `nextwatch eval` takes on your own data at MovieLens 1M size: 1,000,000 ratings over 4,000 titles.

Workload ``ratings-1m``: the seeded file of :mod:`benchmarks.ratings_1m` (6,040 members, 4,000
titles, 1,000,000 ratings), written to a temporary folder before the clock starts. The
command is run as a person runs it (``nextwatch eval --data ratings.dat --titles movies.dat
--out DIR``, every model, default split and intervals, one worker per core) and timed from
start to exit, file writing included. The reference, in the same run: the same command on
the first ``--reference`` ratings with one worker and with the default workers, whose
ratio is what spreading the models over processes buys on this machine.

Premise checked: the run covered every rating (its own count in ``eval.json``), reported
every model, and wrote the table, the CSV and the plot. Figures last, as ``name=value``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.ratings_1m import write_ratings

MODELS = ("popularity (baseline)", "river BiasedMF (baseline)", "item-kNN, last 20 (baseline)", "scorer",
          "learning job top picks", "learning job top picks, neural on")


def run_eval(ratings: Path, titles: Path, out: Path, *extra: str) -> float:
    """Seconds for one `nextwatch eval` (its progress passed through to stderr, its table into ``out``)."""
    out.mkdir(parents=True)
    started = time.monotonic()
    with (out / "eval.txt").open("w") as table:
        subprocess.run([sys.executable, "-m", "infra.cli", "eval", "--data", str(ratings), "--titles", str(titles),
                        "--out", str(out), *extra], check=True, stdout=table)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=1_000_000, help="ratings in the generated file")
    parser.add_argument("--reference", type=int, default=20_000, help="ratings of the one-worker reference")
    parser.add_argument("--keep", type=Path, default=None,
                        help="copy the whole file's table, JSON, CSV and plot into this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nextwatch-eval-speed-") as folder:
        root = Path(folder)
        ratings, titles = write_ratings(root / "data", ratings=args.ratings)
        limit = ["--limit", str(args.reference), "--resamples", "100"]
        print(f"[bench] reference: the first {args.reference:,} ratings, 1 worker then the default", file=sys.stderr)
        one = run_eval(ratings, titles, root / "one", *limit, "--workers", "1")
        spread = run_eval(ratings, titles, root / "spread", *limit)
        print(f"[bench] the whole file: {args.ratings:,} ratings", file=sys.stderr)
        seconds = run_eval(ratings, titles, root / "full")
        summary = json.loads((root / "full" / "eval.json").read_text())
        written = all((root / "full" / name).exists() for name in ("eval.json", "eval.csv", "recall-over-time.svg"))
        models = set(summary["all"]["models"])
        events = summary["events"]
        if args.keep:
            shutil.copytree(root / "full", args.keep, dirs_exist_ok=True)
    covered = events == args.ratings and models >= set(MODELS) and written
    print(f"premise: {events:,} of {args.ratings:,} ratings evaluated, {len(models & set(MODELS))} of "
          f"{len(MODELS)} models reported, files {'written' if written else 'MISSING'}: "
          f"{'holds' if covered else 'DOES NOT HOLD'}")
    print(f"cores={os.cpu_count()} ratings={args.ratings} premise_holds={covered} "
          f"minutes={seconds / 60:.1f} events_per_s={events / seconds:.0f} "
          f"reference_one_worker_s={one:.0f} reference_default_workers_s={spread:.0f} "
          f"workers_speedup={one / spread:.2f}")


if __name__ == "__main__":
    main()
