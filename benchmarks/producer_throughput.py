"""Producer SDK throughput against the local broker (run `nextwatch stack up` first).

Workload ``synthetic-mix``: the first N user events of the seeded synthetic load
(plays, impressions with their rows, clicks, ratings), built as fresh typed
objects before the clock starts. Two paths, alternated over several rounds in one
process, each on fresh topics with the same producer settings (acks=all,
idempotence, lz4):

* ``sdk``: per event ``EventProducer.send`` = validate -> encode -> produce;
* ``preencoded``: the same events encoded beforehand, ``send_encoded`` only
  (what the client alone can do here).

The clock stops when ``flush()`` has confirmed every delivery. Figures last, as
``name=value``; rates are medians over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from dataclasses import replace
from typing import Any

from connectors.codec import EventCodec
from connectors.config import KafkaConfig
from connectors.kafka_admin import delete_topics, ensure_topics
from connectors.producer import EventProducer
from connectors.topics import topic_for_subject
from infra.replay.synthetic import SyntheticLoad


def workload(events: int) -> list[Any]:
    out: list[Any] = []
    for event in SyntheticLoad(users=20_000, titles=3_000, sessions=max(1000, events // 8), seed=11):
        if hasattr(event, "user_id"):
            out.append(event)
            if len(out) == events:
                break
    return out


def run_sdk(kafka: KafkaConfig, events: list[Any]) -> float:
    producer = EventProducer(kafka)
    started = time.perf_counter()
    send = producer.send
    for event in events:
        send(event)
    summary = producer.flush()
    elapsed = time.perf_counter() - started
    assert summary.delivered == len(events), summary
    return len(events) / elapsed


def run_preencoded(kafka: KafkaConfig, encoded: list[tuple[str, bytes, bytes, int]]) -> float:
    producer = EventProducer(kafka)
    started = time.perf_counter()
    send = producer.send_encoded
    for topic, key, value, timestamp in encoded:
        send(topic, key, value, timestamp)
    summary = producer.flush()
    elapsed = time.perf_counter() - started
    assert summary.delivered == len(encoded), summary
    return len(encoded) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    base = KafkaConfig.load()
    print(f"building {args.events:,} fresh events (synthetic-mix)...", file=sys.stderr, flush=True)
    codec = EventCodec()
    rates: dict[str, list[float]] = {"sdk": [], "preencoded": []}
    for round_no in range(args.rounds):
        kafka = replace(base, topic_prefix=f"bench-{uuid.uuid4().hex[:6]}.")
        created = ensure_topics(kafka)
        try:
            events = workload(args.events)  # fresh objects every round: nothing cached on them
            encoded = [(topic_for_subject(type(e).SUBJECT).full_name(kafka), e.user_id.encode(), codec.encode(e),
                        e.event_time_ms) for e in workload(args.events)]
            rates["sdk"].append(run_sdk(kafka, events))
            rates["preencoded"].append(run_preencoded(kafka, encoded))
            print(f"round {round_no + 1}/{args.rounds}: sdk {rates['sdk'][-1]:,.0f}/s, "
                  f"pre-encoded {rates['preencoded'][-1]:,.0f}/s", file=sys.stderr, flush=True)
        finally:
            delete_topics(kafka, created)
    sdk, pre = statistics.median(rates["sdk"]), statistics.median(rates["preencoded"])
    print(f"workload=synthetic-mix events={args.events} rounds={args.rounds} acks=all compression=lz4")
    print(f"sdk_events_per_s={sdk:.0f} preencoded_events_per_s={pre:.0f} sdk_share_of_client_limit={sdk / pre:.2f}")


if __name__ == "__main__":
    main()
