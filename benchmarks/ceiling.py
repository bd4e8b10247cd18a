"""The ceiling: the most this engine, broker and store do here, and every job's backfill throughput against it.

The ceiling job has the jobs' own Kafka source options, Avro decode and contract checks
and Cassandra writer around a trivial keyed Python operator: it counts each member's
events in keyed state and writes one coalesced profile row per member at most every
``flush_ms`` (the feature job's setting), in the faster (thread) execution mode. Each
round runs the ceiling and then each job on the same workload (``movielens-<N>``, see
:mod:`benchmarks.backfill`), so the ratios compare runs minutes apart on the same
machine. Figures last, as name=value: medians over the rounds, in events/s, and each
job's ratio to the ceiling.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction

from benchmarks.backfill import TARGETS, Result, Target, flink_description, median_rate, run_backfill, say
from connectors.config import CassandraConfig, KafkaConfig
from connectors.feature_store import FeatureStore
from connectors.topics import USER_EVENT_TOPICS
from jobs.context import now_ms
from jobs.features.user_state import Profile
from jobs.flink.features.config import FeatureJobConfig
from jobs.runtime import CassandraWriter, DecodeEvents, EventCount, JobSpec, Step, Stores, arm_timer, named, read_events


@dataclass(frozen=True)
class CeilingConfig:
    group_id: str = "nextwatch-ceiling"
    flush_ms: int = FeatureJobConfig.flush_ms

    @classmethod
    def load(cls) -> CeilingConfig:
        return cls(flush_ms=FeatureJobConfig.load().flush_ms)


class CountPerMember(CassandraWriter, KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by member: count events; a member with new events gets one profile row at most every ``flush_ms``."""

    store_type = FeatureStore

    def __init__(self, stores: Stores, flush_ms: int) -> None:
        super().__init__(stores)
        self.flush_ms = flush_ms

    def open(self, runtime_context: Any) -> None:
        from pyflink.datastream.state import ValueStateDescriptor

        self.open_store()
        # (events, last event id, flush armed), as the jobs keep theirs: one pickled value per member
        self.state = runtime_context.get_state(ValueStateDescriptor("count", Types.PICKLED_BYTE_ARRAY()))
        self.applied = EventCount(runtime_context.get_metrics_group(), "events_applied")

    def process_element(self, event: Any, ctx: Any) -> None:
        events, _, armed = self.state.value() or (0, "", False)
        if not armed:
            arm_timer(ctx, self.flush_ms)
        self.state.update((events + 1, event.event_id, True))
        self.applied.inc()

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        events, last_event_id, _ = self.state.value()
        self.state.update((events, last_event_id, False))
        now = now_ms()
        self.store.write_user_features(ctx.get_current_key(), Profile(version=events, updated_ms=now),
                                       last_event_id, {}, now)
        yield from ()


def build(env: Any, kafka: KafkaConfig, cassandra: CassandraConfig, settings: CeilingConfig) -> None:
    decoded = read_events(env, kafka, USER_EVENT_TOPICS, settings.group_id,
                          Step("ceiling-source", "user event topics (Kafka)"),
                          Step("ceiling-decode", "decode + validate"), DecodeEvents("ceiling"))
    named(decoded.events.key_by(lambda event: event.user_id, key_type=Types.STRING())
          .process(CountPerMember(Stores(cassandra), settings.flush_ms)),
          Step("count-per-member", "count per member, one coalesced row (Cassandra)"))


CEILING = Target("ceiling", lambda: JobSpec("ceiling", CeilingConfig, build))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=5_000, help="MovieLens ratings to replay")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", default="features,learning,rows", help="jobs to compare, comma-separated")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    targets = [CEILING, *(TARGETS[name] for name in args.jobs.split(",") if name)]
    results: dict[str, list[Result]] = {t.name: [] for t in targets}
    for round_number in range(1, args.rounds + 1):
        say(f"round {round_number} of {args.rounds}")
        for target in targets:
            results[target.name].append(run_backfill(target, args.ratings, args.timeout))
    ceiling = median_rate(results["ceiling"])
    events = results["ceiling"][0].events
    print(f"workload=movielens-{args.ratings} events={events} rounds={args.rounds} {flink_description()}",
          file=sys.stdout)
    figures = [f"ceiling_events_per_s={ceiling:.0f}"]
    for target in targets[1:]:
        rate = median_rate(results[target.name])
        figures += [f"{target.name}_events_per_s={rate:.0f}", f"{target.name}_ratio={rate / ceiling:.3f}"]
    print(" ".join(figures))


if __name__ == "__main__":
    main()
