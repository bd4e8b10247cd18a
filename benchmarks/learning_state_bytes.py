"""State bytes per user of the learning job: its UserModel, pickled as keyed state, over the MovieLens replay.

Workload ``movielens-replay-<N>``: the replay of the first N ratings (all of them by
default) through the feedback rule and the job's own user-side logic, then every
user's state pickled as Flink stores it. Twice, side by side: the matrix
factorization and co-watch state alone (:class:`jobs.models.online.LocalLoop`, the
previous issue's job) and with every signal (:class:`jobs.models.signals.JobLoop`:
content profile and searches too, with the replay's catalog). No services needed.
Figures last.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys

from infra.replay.movielens import MovieLensReplay, load_movielens
from jobs.models.content import title_text
from jobs.models.feedback import feedback_from_event, search_from_event
from jobs.models.online import LocalLoop
from jobs.models.signals import JobLoop


def _sizes(loop: LocalLoop) -> list[int]:
    return sorted(len(pickle.dumps(user)) for user in loop.users.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=0, help="0: all 100,000")
    args = parser.parse_args()
    replay = MovieLensReplay(load_movielens(), limit=args.ratings or None)
    # publishing cadence does not change user state size
    before = LocalLoop(publish_every=1000)
    every = JobLoop(publish_every=1000, catalog=[title_text(item) for item in replay.catalog()])
    for n, event in enumerate(replay.events()):
        feedback = feedback_from_event(event)
        if feedback is not None:
            before.learn(event.user_id, feedback, event.event_id)
            every.learn(event.user_id, feedback, event.event_id)
        search = search_from_event(event)
        if search is not None:
            every.learn_search(event.user_id, search, event.event_id)
        if n % 100_000 == 0:
            print(f"[state] {n:,} events", file=sys.stderr, flush=True)
    print(f"workload=movielens-replay-{len(replay.ratings)} users={len(every.users)}")
    for name, sizes in (("mf_cf", _sizes(before)), ("all_signals", _sizes(every))):
        print(f"{name}_state_bytes_per_user_mean={statistics.mean(sizes):.0f} "
              f"{name}_state_bytes_per_user_p99={sizes[int(0.99 * (len(sizes) - 1))]} "
              f"{name}_state_bytes_per_user_max={sizes[-1]}")


if __name__ == "__main__":
    main()
