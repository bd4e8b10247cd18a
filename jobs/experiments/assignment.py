"""Which variant a member gets: a pure function of the member id and the experiment, with no lookup.

Two hashes decide it. The member's **bucket in the layer** (the member id hashed with
the layer's name, 0-9,999) says which experiment of that layer, if any, holds them:
experiments of one layer hold disjoint bucket ranges, so they never share a member,
and different layers hash differently, so their experiments are independent. The
member's **draw in the experiment** (the member id hashed with the experiment's salt,
in [0, 1)) then picks the variant by the variants' weights. The jobs, the API and the
report all call :func:`assign`, so a member is in the same variant everywhere.

Eligibility and the experiment's start and stop are checked at each exposure: a member
enters at their first eligible exposure (the metrics job records it) and is otherwise
served the defaults and not counted.

>>> from jobs.experiments.definition import Experiment, Variant
>>> more = Variant("more", 1.0, {"rows.diversity": "0.5"})
>>> test = Experiment("diversity", "ranking", "s1", (Variant("control"), more))
>>> first = assign([test], "member-42", Exposure(), now_ms=1)
>>> [a.variant.name for a in first] == [a.variant.name for a in assign([test], "member-42", Exposure(), now_ms=9)]
True
>>> settings_for(first, "rows") in ({}, {"diversity": "0.5"})
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from jobs.experiments.definition import LAYER_BUCKETS, Experiment, Exposure, Variant

_SCALE = float(1 << 64)


def unit_hash(*parts: str) -> float:
    """A uniform draw in [0, 1) from ``parts``, the same on every machine and Python (BLAKE2b, not ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def layer_bucket(member_id: str, layer: str) -> int:
    """The member's bucket of ``layer`` (0 to 9,999)."""
    return int(unit_hash("layer", layer, member_id) * LAYER_BUCKETS)


def variant_of(experiment: Experiment, member_id: str) -> Variant | None:
    """The variant ``member_id`` gets if eligible, or None when the experiment's buckets do not hold them."""
    bucket = layer_bucket(member_id, experiment.layer)
    if not experiment.bucket_start <= bucket < experiment.bucket_start + experiment.bucket_count:
        return None
    return pick(experiment.variants, unit_hash("variant", experiment.salt, member_id))


def pick(variants: Sequence[Variant], draw: float) -> Variant:
    """The variant whose share of [0, 1), in order and by weight, holds ``draw``."""
    total = sum(v.weight for v in variants)
    edge = 0.0
    for variant in variants:
        edge += variant.weight / total
        if draw < edge:
            return variant
    return variants[-1]  # rounding at the top edge


@dataclass(frozen=True)
class Assignment:
    """A member in one running experiment: the variant they are served and the experiment's version."""

    experiment: str
    variant: Variant
    version: int

    @property
    def label(self) -> str:
        """``experiment:variant``, as presentation tokens and impression outcomes carry it."""
        return f"{self.experiment}:{self.variant.name}"


def assign(experiments: Iterable[Experiment], member_id: str, exposure: Exposure, now_ms: int) -> list[Assignment]:
    """The member's assignments for this exposure, at most one per layer, in name order.

    Only running experiments whose eligibility admits the exposure count.
    """
    out, layers = [], set()
    for experiment in sorted(experiments, key=lambda e: e.name):
        if experiment.layer in layers or not experiment.running(now_ms) or not experiment.eligibility.admits(exposure):
            continue
        variant = variant_of(experiment, member_id)
        if variant is not None:  # overlapping ranges in one layer (never allocated so): the first name wins
            layers.add(experiment.layer)
            out.append(Assignment(experiment.name, variant, experiment.version))
    return out


def settings_for(assignments: Iterable[Assignment], component: str) -> dict[str, str]:
    """One component's settings overridden by the member's variants (layers never override one setting twice)."""
    settings: dict[str, str] = {}
    for assignment in assignments:
        settings.update(assignment.variant.settings(component))
    return settings
