"""State bytes per user of the learning job: its UserModel, pickled as keyed state, over the MovieLens replay.

Workload ``movielens-replay-<N>``: the replay of the first N ratings (all of them by
default) through the feedback rule and the job's own user-side logic
(:class:`jobs.models.online.LocalLoop`, the same code the job runs), then every
user's state pickled as Flink stores it. No services needed. Figures last.
"""

from __future__ import annotations

import argparse
import pickle
import statistics

from infra.replay.movielens import MovieLensReplay, load_movielens
from jobs.models.feedback import feedback_from_event
from jobs.models.online import LocalLoop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=0, help="0: all 100,000")
    args = parser.parse_args()
    replay = MovieLensReplay(load_movielens(), limit=args.ratings or None)
    loop = LocalLoop(publish_every=1000)  # publishing cadence does not change user state size
    for event in replay.events():
        feedback = feedback_from_event(event)
        if feedback is not None:
            loop.learn(event.user_id, feedback, event.event_id)
    sizes = sorted(len(pickle.dumps(user)) for user in loop.users.values())
    print(f"workload=movielens-replay-{len(replay.ratings)} users={len(sizes)}")
    print(f"state_bytes_per_user_mean={statistics.mean(sizes):.0f} "
          f"state_bytes_per_user_p99={sizes[int(0.99 * (len(sizes) - 1))]} state_bytes_per_user_max={sizes[-1]}")


if __name__ == "__main__":
    main()
