"""Every record the jobs write encodes with its contract in ``schemas/`` and reads back as it was meant."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from connectors.codec import EventCodec
from jobs.experiments.definition import Eligibility, Experiment, Variant
from jobs.exploration.presentation import PolicyLearnerState
from jobs.exploration.rewards import Outcome
from jobs.features.sessions import SessionFeatures
from jobs.features.user_state import Profile
from jobs.models.blend import PublishedBlend
from jobs.models.online import MODEL_VERSION, ItemVectors, LearningConfig, UserModel
from jobs.models.signals import Pick
from jobs.records.blend_update import blend_update_record, published_blend
from jobs.records.experiment import experiment_from_record, experiment_record
from jobs.records.impression_outcome import outcome_record
from jobs.records.item_vectors import item_vectors_from_record, item_vectors_record
from jobs.records.policy_update import policy_update_record, published_policies
from jobs.records.rejected_event import rejection_record
from jobs.records.session_features import session_record
from jobs.records.user_features import profile_record
from jobs.records.user_update import user_update_from_record, user_update_record

CODEC = EventCodec()


def _round_trip(subject: str, record: dict[str, Any]) -> dict[str, Any]:
    decoded = CODEC.decode(CODEC.encode_record(subject, record))
    assert decoded.subject == subject
    return decoded.record  # type: ignore[no-any-return]


def rejected_event() -> None:
    back = _round_trip("rejected_event", rejection_record("INVALID", "not Avro", "nextwatch-features", b"\x00"))
    assert back["reason"] == "not Avro" and back["original"] == b"\x00" and back["user_id"] is None


def user_features() -> None:
    profile = Profile(version=4, updated_ms=9, genre_affinity={"Drama": 0.5}, recent_searches=["heat"])
    back = _round_trip("user_features", profile_record("u1", profile, "e4"))
    assert (back["event_id"], back["genre_affinity"], back["recent_searches"]) == ("u1:4", {"Drama": 0.5}, ["heat"])


def session_features() -> None:
    session = SessionFeatures("u1", 1, 2, 1, 1, 1, 1.0, 4, 1, 0.25, 0, 6, ["Drama"], "tv", "evening", "mon")
    back = _round_trip("session_features", session_record(session))
    assert (back["event_id"], back["ctr"], back["genres"]) == ("u1:1", 0.25, ["Drama"])


def item_vectors() -> None:
    vectors = ItemVectors.initial("t1", LearningConfig())
    back = item_vectors_from_record(_round_trip("item_vectors", item_vectors_record(vectors, 5)))
    assert back is not None and (back.title_id, back.version) == ("t1", 0)


def user_update() -> None:
    user = UserModel(version=3, last_event_id="e3", recent=["t1"])
    back = user_update_from_record(_round_trip("user_update", user_update_record("u1", user, [Pick("t2", 0.5, "cf")],
                                                                                5)))
    assert back is not None and (back.version, back.picks, back.content_profile) == (3, (("t2", 0.5, "cf"),), ())
    other = {**user_update_record("u1", user, [], 5), "model_version": "older"}
    assert other["model_version"] != MODEL_VERSION and user_update_from_record(other) is None


def policy_update() -> None:
    from jobs.flink.rows.config import RowsJobConfig, new_policies

    state = PolicyLearnerState(new_policies(RowsJobConfig()), version=7)
    back = published_policies(_round_trip("policy_update", policy_update_record(state, 5)))
    assert (back.name, back.version) == ("homepage", 7) and back.models


def blend_update() -> None:
    blend = PublishedBlend("new", 4, {"popularity": 1.0, "item_cf": 0.3}, 1_500, 0.31, 9)
    assert published_blend(_round_trip("blend_update", blend_update_record(blend, 10))) == blend


def neural_update() -> None:
    import numpy as np

    from jobs.models.neural import PublishedNeural
    from jobs.records.neural_update import neural_update_record, published_neural

    weights = PublishedNeural("t1", 7, 2, np.array([0.5, -1.0], dtype=np.float32), 0.25, 9)
    back = published_neural(_round_trip("neural_update", neural_update_record(weights, 10)))
    assert back is not None and (back.key, back.version, back.vector.tolist(), back.bias) == ("t1", 7, [0.5, -1.0],
                                                                                              0.25)
    assert published_neural({**neural_update_record(weights, 10), "model_version": "other"}) is None


def impression_outcome() -> None:
    outcome = Outcome("imp-1", "top_picks", 0, "t1", 2, "t1-art0", True, False, "rows-eg-1+art-eg-1", 0.9, 0.5,
                      False, 1_790_000_000_000, ("div:more",))
    back = _round_trip("impression_outcome", outcome_record("u1", outcome, "evening:tv", "mon", 5))
    assert (back["event_id"], back["clicked"], back["item_propensity"]) == ("imp-1:2", True, 0.5)
    assert back["experiments"] == ["div:more"] and back["schema_version"] == 2


def experiment() -> None:
    variants = (Variant("control"), Variant("more", 3.0, {"rows.diversity": "0.5"}))
    definition = Experiment("div", "ranking", "salt-1", variants, bucket_start=100, bucket_count=2500,
                            eligibility=Eligibility(countries=frozenset({"US"}), tenure=frozenset({"new"})),
                            start_ms=5, version=2, description="more diverse rows", updated_ms=9)
    back = _round_trip("experiment", experiment_record(definition, 10))
    assert back["event_id"] == "div:2" and back["stop_ms"] is None
    assert experiment_from_record(back) == definition
    stopped = experiment_from_record(_round_trip("experiment", experiment_record(definition.stopped(20), 21)))
    assert (stopped.stop_ms, stopped.version, stopped.salt) == (20, 3, "salt-1")


CONTRACTS: dict[str, Callable[[], None]] = {
    "experiment": experiment,
    "rejected_event": rejected_event, "user_features": user_features, "session_features": session_features,
    "item_vectors": item_vectors, "user_update": user_update, "policy_update": policy_update,
    "impression_outcome": impression_outcome, "blend_update": blend_update, "neural_update": neural_update}


@pytest.mark.parametrize("contract", sorted(CONTRACTS))
def test_record_round_trips(contract: str) -> None:
    CONTRACTS[contract]()


def test_every_record_module_is_covered() -> None:
    from connectors.config import REPO_ROOT

    modules = {p.stem for p in (REPO_ROOT / "jobs" / "records").glob("*.py") if p.stem != "__init__"}
    assert modules == set(CONTRACTS)
