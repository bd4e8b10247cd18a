"""Experiment definitions and assignment: deterministic, split by weight, exclusive in a layer, independent across."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.experiments.assignment import assign, layer_bucket, pick, settings_for, unit_hash, variant_of
from jobs.experiments.definition import (
    LAYER_BUCKETS,
    DefinitionError,
    Eligibility,
    Experiment,
    Exposure,
    Variant,
    allocate,
    parse_definition,
)
from jobs.experiments.stats import chi2_survival

MEMBERS = [f"member-{i}" for i in range(20_000)]
ANYONE = Exposure()


def definition(**overrides: Any) -> dict[str, Any]:
    return {"name": "diversity", "layer": "ranking", "traffic": 1.0,
            "variants": [{"name": "control"}, {"name": "more", "overrides": {"rows.diversity": 0.5}}], **overrides}


def experiment(name: str = "diversity", layer: str = "ranking", weights: tuple[float, ...] = (1.0, 1.0),
               start: int = 0, count: int = LAYER_BUCKETS, **kwargs: Any) -> Experiment:
    variants = tuple(Variant(f"v{i}", w) for i, w in enumerate(weights))
    return Experiment(name, layer, f"salt-{name}", variants, start, count, **kwargs)


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=20))
def test_same_member_same_variant_every_time(member: str, salt: str) -> None:
    test = Experiment("x", "l", salt, (Variant("a"), Variant("b"), Variant("c", 2.0)))
    first = variant_of(test, member)
    assert first is not None and all(variant_of(test, member) == first for _ in range(3))
    assert 0.0 <= unit_hash(member, salt) < 1.0 and 0 <= layer_bucket(member, salt) < LAYER_BUCKETS


def test_hash_is_fixed_across_processes_and_versions() -> None:
    """Assignment may not depend on Python's per-process string hash: these values are the contract."""
    assert layer_bucket("member-1", "ranking") == 3157
    assert unit_hash("variant", "salt", "member-1") == pytest.approx(0.10415544375249025, abs=1e-15)
    assert unit_hash("a", "b") != unit_hash("ab") and unit_hash("a", "bc") != unit_hash("ab", "c")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=9), min_size=2, max_size=4))
def test_split_follows_the_weights(weights: list[int]) -> None:
    test = experiment(weights=tuple(float(w) for w in weights))
    counts = dict.fromkeys((v.name for v in test.variants), 0)
    for member in MEMBERS:
        variant = variant_of(test, member)
        assert variant is not None
        counts[variant.name] += 1
    for variant in test.variants:
        share = variant.weight / sum(weights)
        assert abs(counts[variant.name] / len(MEMBERS) - share) < 0.02, (counts, weights)


def test_experiments_in_one_layer_never_share_a_member() -> None:
    first = allocate(parse_definition(definition(name="a", traffic=0.3), 0), [], now_ms=0)
    second = allocate(parse_definition(definition(name="b", traffic=0.5), 0), [first], now_ms=0)
    assert (first.bucket_start, first.bucket_count, second.bucket_start, second.bucket_count) == (0, 3000, 3000, 5000)
    in_a = in_b = 0
    for member in MEMBERS:
        names = [a.experiment for a in assign([first, second], member, ANYONE, now_ms=1)]
        assert len(names) <= 1
        in_a += names == ["a"]
        in_b += names == ["b"]
    assert abs(in_a / len(MEMBERS) - 0.3) < 0.02 and abs(in_b / len(MEMBERS) - 0.5) < 0.02


def test_layers_are_independent() -> None:
    """Two 50/50 experiments in different layers: the 2x2 table of variants is what independence predicts."""
    ranking, artwork = experiment("ranking-test", "ranking"), experiment("artwork-test", "artwork")
    table = {(a, b): 0 for a in ("v0", "v1") for b in ("v0", "v1")}
    for member in MEMBERS:
        both = {x.experiment: x.variant.name for x in assign([ranking, artwork], member, ANYONE, now_ms=1)}
        table[both["ranking-test"], both["artwork-test"]] += 1
    rows = {a: table[a, "v0"] + table[a, "v1"] for a in ("v0", "v1")}
    cols = {b: table["v0", b] + table["v1", b] for b in ("v0", "v1")}
    chi2 = sum((table[a, b] - rows[a] * cols[b] / len(MEMBERS)) ** 2 / (rows[a] * cols[b] / len(MEMBERS))
               for a, b in table)
    assert chi2_survival(chi2, 1) > 0.001, table


def test_same_salt_in_two_layers_still_independent_buckets() -> None:
    """The layer's bucket and the variant's draw hash different inputs, so a reused salt does not correlate them."""
    matches = sum(layer_bucket(m, "ranking") == layer_bucket(m, "artwork") for m in MEMBERS[:5000])
    assert matches < 10


def test_eligibility_and_schedule_are_checked_at_each_exposure() -> None:
    phones = experiment(eligibility=Eligibility(device_classes=frozenset({"MOBILE"}), tenure=frozenset({"new"})),
                        start_ms=100, stop_ms=200)
    member = "member-7"
    on_phone = Exposure(device_class="MOBILE", tenure="new")
    assert assign([phones], member, on_phone, now_ms=150)
    assert not assign([phones], member, Exposure(device_class="TV", tenure="new"), now_ms=150)
    assert not assign([phones], member, Exposure(device_class="MOBILE", tenure="established"), now_ms=150)
    assert not assign([phones], member, on_phone, now_ms=99)
    assert not assign([phones], member, on_phone, now_ms=200)


def test_settings_for_a_component_come_from_the_member_variant() -> None:
    test = allocate(parse_definition(definition(), 0), [], now_ms=0)
    seen = {}
    for member in MEMBERS[:200]:
        (only,) = assign([test], member, ANYONE, now_ms=1)
        seen[only.variant.name] = settings_for([only], "rows")
        assert settings_for([only], "learning") == {}
    assert seen == {"control": {}, "more": {"diversity": "0.5"}}
    assert only.label in ("diversity:control", "diversity:more")


def test_pick_covers_the_edges() -> None:
    variants = (Variant("a", 1.0), Variant("b", 3.0))
    assert [pick(variants, d).name for d in (0.0, 0.2499, 0.25, 0.999999999)] == ["a", "a", "b", "b"]


@pytest.mark.parametrize(("change", "named"), [
    ({"colour": "red"}, "unknown keys ['colour']"),
    ({"name": "Has Spaces"}, "name 'Has Spaces'"),
    ({"traffic": 0}, "traffic 0"),
    ({"traffic": 1.5}, "traffic 1.5"),
    ({"traffic": 0.00001}, "below one bucket"),
    ({"variants": [{"name": "only"}]}, "variants: 2 to 8"),
    ({"variants": [{"name": "a"}, {"name": "a"}]}, "variants[1].name 'a' is used twice"),
    ({"variants": [{"name": "a"}, {"name": "b", "weight": -1}]}, "variants[1].weight -1"),
    ({"variants": [{"name": "a"}, {"name": "b", "overrides": {"rows.flush_ms": 5}}]},
     "'rows.flush_ms' is not a setting experiments may change"),
    ({"variants": [{"name": "a"}, {"name": "b", "overrides": {"rows.diversity": [1]}}]},
     "variants[1].overrides.rows.diversity"),
    ({"eligibility": {"device_classes": ["PHONE"]}}, "eligibility.device_classes: ['PHONE'] not among"),
    ({"eligibility": {"countries": ["usa"]}}, "eligibility.countries: ISO 3166-1"),
    ({"eligibility": {"age": [1]}}, "eligibility: unknown keys ['age']"),
    ({"start_ms": 10, "stop_ms": 5}, "stop_ms 5 must be after start_ms 10"),
    ({"eligibility": {"device_classes": ["TV"]},
      "variants": [{"name": "a"}, {"name": "b", "overrides": {"learning.blend": "item_cf=1"}}]},
     "learning.blend change a member's picks, which serve every device, country and profile: such an "
     "experiment's eligibility may name tenure only, not device_classes"),
])
def test_bad_definitions_are_refused_by_name(change: dict[str, Any], named: str) -> None:
    with pytest.raises(DefinitionError, match=re.escape(named)):
        parse_definition(definition(**change), now_ms=0)


def test_allocation_refusals_name_the_conflict() -> None:
    running = allocate(parse_definition(definition(name="a", traffic=0.7), 0), [], now_ms=0)
    with pytest.raises(DefinitionError, match="no free range of 5,000 buckets"):
        allocate(parse_definition(definition(name="b", traffic=0.5), 0), [running], now_ms=1)
    with pytest.raises(DefinitionError, match="exists and is running"):
        allocate(parse_definition(definition(name="a", traffic=0.1), 0), [running], now_ms=1)
    with pytest.raises(DefinitionError, match=r"rows\.diversity also changed by running experiment 'a'"):
        allocate(parse_definition(definition(name="c", layer="other", traffic=0.1), 0), [running], now_ms=1)
    stopped = running.stopped(5)
    with pytest.raises(DefinitionError, match="ran before"):
        allocate(parse_definition(definition(name="a", traffic=0.1), 0), [stopped], now_ms=6)
    reused = allocate(parse_definition(definition(name="b", traffic=0.5), 0), [stopped], now_ms=6)
    assert reused.bucket_start == 0  # a stopped experiment's buckets are free again
