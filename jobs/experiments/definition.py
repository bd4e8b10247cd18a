"""What an experiment is: who is eligible, how its members split, and what each variant changes.

An experiment is written as TOML by the team running it and published, validated, on
the compacted experiments topic (``schemas/experiment.v1.avsc``)::

    name = "diversity-mobile"
    layer = "homepage-ranking"      # experiments in one layer never share a member
    traffic = 0.5                   # of the layer's members
    description = "Does diversity 0.5 beat 0.3 for new members on phones?"

    [eligibility]                   # checked at each exposure; left out: everyone
    device_classes = ["MOBILE"]
    tenure = ["new"]

    [[variants]]                    # the first is the control
    name = "control"
    weight = 1

    [[variants]]
    name = "diverse"
    weight = 1
    overrides = { "rows.diversity" = 0.5 }

Only the settings in :data:`OVERRIDABLE` may be overridden; the command line checks
every value with the component's own config (``nextwatch experiments create``).

>>> draft = parse_definition({"name": "d", "layer": "l", "traffic": 0.25,
...     "variants": [{"name": "control"}, {"name": "more", "overrides": {"rows.diversity": 0.5}}]}, now_ms=0)
>>> draft.traffic, [v.name for v in draft.variants], draft.variants[1].settings("rows")
(0.25, ['control', 'more'], {'diversity': '0.5'})
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from connectors.state import Versioned
from jobs.homepage.rules import MATURITY_LEVELS

LAYER_BUCKETS = 10_000  # a layer's members hash into this many buckets; an experiment holds a contiguous range
MAX_VARIANTS = 8
MAX_HELD = 10_000  # experiments a job or a service holds (stopped ones too); more are counted and not run
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
TENURES = ("new", "growing", "established")
DEVICE_CLASSES = ("TV", "MOBILE", "WEB")
# component -> the settings a variant may change (each checked by that component's config on create)
OVERRIDABLE: dict[str, tuple[str, ...]] = {
    "learning": ("blend", "blend_new", "blend_growing", "blend_established"),
    "rows": ("diversity", "popularity_penalty", "explore_share", "explore_after", "row_order", "row_order_epsilon",
             "artwork_epsilon", "context_weight"),
}
_MAX_TEXT = 1_000


class DefinitionError(ValueError):
    """An experiment definition that cannot be run; the message names the field."""


@dataclass(frozen=True)
class Exposure:
    """Who is being served, and where: what eligibility is checked against (None: not known here)."""

    country: str | None = None
    device_class: str | None = None
    tenure: str | None = None
    maturity: str | None = None


@dataclass(frozen=True)
class Eligibility:
    """Which exposures count; an empty set admits every value, a non-empty one only the values it lists
    (an exposure that does not know the value is not admitted).

    >>> phones = Eligibility(device_classes=frozenset({"MOBILE"}))
    >>> phones.admits(Exposure(device_class="MOBILE")), phones.admits(Exposure(device_class="TV"))
    (True, False)
    >>> phones.admits(Exposure())
    False
    """

    countries: frozenset[str] = frozenset()
    device_classes: frozenset[str] = frozenset()
    tenure: frozenset[str] = frozenset()
    maturity: frozenset[str] = frozenset()

    def admits(self, exposure: Exposure) -> bool:
        return all(not allowed or value in allowed for allowed, value in (
            (self.countries, exposure.country), (self.device_classes, exposure.device_class),
            (self.tenure, exposure.tenure), (self.maturity, exposure.maturity)))


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float = 1.0
    overrides: Mapping[str, str] = field(default_factory=dict)  # "component.setting" -> value as config reads it

    def settings(self, component: str) -> dict[str, str]:
        """This variant's overrides of one component's settings, by setting name."""
        prefix = component + "."
        return {key[len(prefix):]: value for key, value in self.overrides.items() if key.startswith(prefix)}


@dataclass(frozen=True)
class Experiment(Versioned):
    """One version of one experiment, as the experiments topic carries it (and the jobs' broadcast state holds
    it: its variants and eligibility are part of its state's shape)."""

    STATE_VERSION = 1

    name: str
    layer: str
    salt: str
    variants: tuple[Variant, ...]
    bucket_start: int = 0
    bucket_count: int = LAYER_BUCKETS
    eligibility: Eligibility = Eligibility()
    start_ms: int = 0
    stop_ms: int | None = None
    version: int = 1
    description: str = ""
    updated_ms: int = 0

    @property
    def traffic(self) -> float:
        return self.bucket_count / LAYER_BUCKETS

    @property
    def control(self) -> Variant:
        return self.variants[0]

    def running(self, now_ms: int) -> bool:
        return self.start_ms <= now_ms and (self.stop_ms is None or now_ms < self.stop_ms)

    def settings_overridden(self) -> set[str]:
        return {key for variant in self.variants for key in variant.overrides}

    def stopped(self, now_ms: int) -> Experiment:
        """The next version: stopped from ``now_ms`` (its members get the defaults again)."""
        return replace(self, stop_ms=now_ms, version=self.version + 1, updated_ms=now_ms)


def hold(held: MutableMapping[str, Experiment], experiment: Experiment,
         check: Callable[[Variant], object] = lambda variant: None) -> str | None:
    """Serve ``experiment`` from ``held`` (a job's or a service's, by name): None when held, else why not.

    ``check`` raises ValueError for a variant this component cannot run (an override its config refuses:
    checked on create, so written around it); the whole experiment is then dropped ("override"), since
    serving only its control would skew the split. Past ``MAX_HELD`` experiments a new one is refused
    ("over_limit").

    >>> held = {}
    >>> hold(held, Experiment("e", "l", "s", (Variant("a"), Variant("b")))), list(held)
    (None, ['e'])
    >>> hold(held, Experiment("e", "l", "s", (Variant("a"), Variant("b"))), check=lambda v: float(v.name)), list(held)
    ('override', [])
    """
    try:
        for variant in experiment.variants:
            check(variant)
    except ValueError:
        held.pop(experiment.name, None)
        return "override"
    if experiment.name not in held and len(held) >= MAX_HELD:
        return "over_limit"
    held[experiment.name] = experiment
    return None


@dataclass(frozen=True)
class Draft:
    """A definition before it holds buckets of its layer (:func:`allocate`)."""

    name: str
    layer: str
    salt: str
    traffic: float
    variants: tuple[Variant, ...]
    eligibility: Eligibility
    start_ms: int
    stop_ms: int | None
    description: str


def parse_definition(data: Mapping[str, Any], now_ms: int) -> Draft:
    """A definition (parsed TOML) checked field by field; :class:`DefinitionError` names the first bad one."""
    known = {"name", "layer", "salt", "traffic", "description", "eligibility", "variants", "start_ms", "stop_ms"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise DefinitionError(f"unknown keys {unknown}; known: {sorted(known)}")
    name = _text(data, "name")
    if not NAME.match(name):
        raise DefinitionError(f"name {name!r}: use 1-64 of a-z, 0-9 and -, starting with a letter or digit")
    layer = _text(data, "layer", "default")
    if not NAME.match(layer):
        raise DefinitionError(f"layer {layer!r}: use 1-64 of a-z, 0-9 and -")
    traffic = data.get("traffic", 1.0)
    if isinstance(traffic, bool) or not isinstance(traffic, int | float) or not 0 < traffic <= 1:
        raise DefinitionError(f"traffic {traffic!r}: a share of the layer's members, above 0 and at most 1")
    if round(traffic * LAYER_BUCKETS) < 1:
        raise DefinitionError(f"traffic {traffic!r}: below one bucket of {LAYER_BUCKETS:,}")
    start_ms = _millis(data, "start_ms", now_ms)
    stop_ms = data.get("stop_ms")
    if stop_ms is not None and _millis(data, "stop_ms", 0) <= start_ms:
        raise DefinitionError(f"stop_ms {stop_ms!r} must be after start_ms {start_ms}")
    variants, eligibility = _variants(data.get("variants")), _eligibility(data.get("eligibility", {}))
    per_exposure = [key for key in ("countries", "device_classes", "maturity") if getattr(eligibility, key)]
    learning = sorted({key for v in variants for key in v.overrides if key.startswith("learning.")})
    if learning and per_exposure:
        raise DefinitionError(f"{', '.join(learning)} change a member's picks, which serve every device, country "
                              f"and profile: such an experiment's eligibility may name tenure only, not "
                              f"{', '.join(per_exposure)}")
    return Draft(name, layer, _text(data, "salt", name), float(traffic), variants, eligibility, start_ms, stop_ms,
                 _text(data, "description", ""))


def allocate(draft: Draft, others: Sequence[Experiment], now_ms: int) -> Experiment:
    """Give ``draft`` the first free range of its layer's buckets big enough for its traffic.

    ``others``: the newest version of every experiment. Running ones in the same layer hold
    their buckets; a running one in another layer that overrides a setting this one does is
    refused, since two layers changing one setting would not be independent.
    """
    taken = []
    for other in others:
        if other.name == draft.name:
            if other.stop_ms is None or other.stop_ms > now_ms:
                raise DefinitionError(f"experiment {draft.name!r} exists and is running (version {other.version}); "
                                      f"stop it first or choose a new name")
            raise DefinitionError(f"experiment {draft.name!r} ran before (stopped at {other.stop_ms}); a new "
                                  f"experiment needs a new name, so its report does not mix the two")
        if other.stop_ms is not None and other.stop_ms <= now_ms:
            continue
        if other.layer == draft.layer:
            taken.append((other.bucket_start, other.bucket_start + other.bucket_count))
            continue
        shared = sorted({k for v in draft.variants for k in v.overrides} & other.settings_overridden())
        if shared:
            raise DefinitionError(f"{', '.join(shared)} also changed by running experiment {other.name!r} in layer "
                                  f"{other.layer!r}: put both in one layer so they never share a member")
    need = round(draft.traffic * LAYER_BUCKETS)
    start = 0
    for begin, end in sorted(taken):
        if begin - start >= need:
            break
        start = max(start, end)
    if LAYER_BUCKETS - start < need:
        free = LAYER_BUCKETS - sum(end - begin for begin, end in taken)
        raise DefinitionError(f"layer {draft.layer!r} has no free range of {need:,} buckets (traffic "
                              f"{draft.traffic:g}); {free:,} of {LAYER_BUCKETS:,} are free in all")
    return Experiment(draft.name, draft.layer, draft.salt, draft.variants, start, need, draft.eligibility,
                      draft.start_ms, draft.stop_ms, 1, draft.description, now_ms)


def _text(data: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        if key == "description" and value == "":
            return ""
        raise DefinitionError(f"{key}: a non-empty string of at most {_MAX_TEXT} characters is required, "
                              f"got {value!r}")
    return value


def _millis(data: Mapping[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DefinitionError(f"{key}: UTC epoch milliseconds, got {value!r}")
    return value


def _names(section: str, key: str, value: Any, allowed: Sequence[str] | None) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 300:
        raise DefinitionError(f"{section}.{key}: a list of strings, got {value!r}")
    if allowed is not None:
        bad = sorted(set(value) - set(allowed))
        if bad:
            raise DefinitionError(f"{section}.{key}: {bad} not among {list(allowed)}")
    elif not all(re.fullmatch(r"[A-Z]{2}", v) for v in value):
        raise DefinitionError(f"{section}.{key}: ISO 3166-1 alpha-2 codes in upper case, got {value!r}")
    return frozenset(value)


def _eligibility(data: Any) -> Eligibility:
    if not isinstance(data, Mapping):
        raise DefinitionError(f"eligibility: a table, got {data!r}")
    allowed: dict[str, Sequence[str] | None] = {"countries": None, "device_classes": DEVICE_CLASSES,
                                                "tenure": TENURES, "maturity": MATURITY_LEVELS}
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise DefinitionError(f"eligibility: unknown keys {unknown}; known: {sorted(allowed)}")
    return Eligibility(**{key: _names("eligibility", key, data[key], allowed[key]) for key in data})


def _variants(data: Any) -> tuple[Variant, ...]:
    if not isinstance(data, list) or not 2 <= len(data) <= MAX_VARIANTS:
        raise DefinitionError(f"variants: 2 to {MAX_VARIANTS} [[variants]] tables (the first is the control)")
    out: list[Variant] = []
    for index, entry in enumerate(data):
        where = f"variants[{index}]"
        if not isinstance(entry, Mapping):
            raise DefinitionError(f"{where}: a table, got {entry!r}")
        unknown = sorted(set(entry) - {"name", "weight", "overrides"})
        if unknown:
            raise DefinitionError(f"{where}: unknown keys {unknown}; known: ['name', 'overrides', 'weight']")
        name = entry.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise DefinitionError(f"{where}.name {name!r}: use 1-64 of a-z, 0-9 and -")
        if name in {v.name for v in out}:
            raise DefinitionError(f"{where}.name {name!r} is used twice")
        weight = entry.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < math.inf:
            raise DefinitionError(f"{where}.weight {weight!r}: a positive number")
        overrides = entry.get("overrides", {})
        if not isinstance(overrides, Mapping):
            raise DefinitionError(f"{where}.overrides: a table of component.setting = value")
        checked = {key: _override(where, key, value) for key, value in overrides.items()}
        out.append(Variant(name, float(weight), checked))
    return tuple(out)


def _override(where: str, key: str, value: Any) -> str:
    component, _, setting = key.partition(".")
    if setting not in OVERRIDABLE.get(component, ()):
        allowed = [f"{c}.{s}" for c, names in OVERRIDABLE.items() for s in names]
        raise DefinitionError(f"{where}.overrides: {key!r} is not a setting experiments may change; they are "
                              f"{', '.join(allowed)}")
    if isinstance(value, bool) or not isinstance(value, str | int | float) or len(str(value)) > _MAX_TEXT:
        raise DefinitionError(f"{where}.overrides.{key}: a number or a string, got {value!r}")
    return str(value)
