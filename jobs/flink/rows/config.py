"""The rows job's settings: ``[rows]`` in the config file, ``NEXTWATCH_ROWS_*`` in the environment."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from connectors.config import load_section
from connectors.errors import ConfigError
from jobs.exploration.policies import ArtworkPolicy, FixedRowOrder, RowOrderPolicy
from jobs.exploration.presentation import ROW_KINDS, HomepagePolicies
from jobs.exploration.rewards import REWARD_WINDOW_MS
from jobs.homepage.rows import HomepageSettings

JOB_NAME = "nextwatch-rows"
ROW_ORDER_POLICIES = ("learned", "fixed")


@dataclass(frozen=True)
class RowsJobConfig:
    """``[rows]`` in the config file / ``NEXTWATCH_ROWS_*``."""

    flush_ms: int = 200  # a user's homepage: rebuilt at most this often
    max_flush_ms: int = 1_000  # ... stretched up to this while working off a backlog (jobs/pacing.py)
    trending_refresh_ms: int = 30_000
    settings_refresh_ms: int = 3_600_000
    shared_refresh_ms: int = 5_000  # popularity percentiles and catalog indexes, at most this often
    items_per_row: int = 20
    diversity: float = 0.3
    popularity_penalty: float = 0.1
    explore_share: float = 0.05  # of each recommended row's slots, at most: less-known titles
    # explored titles go in this slot or later: what the ranking puts first is never displaced
    # (homepage_quality as served: Recall@10 0.1861 exploring from the second slot, 0.1954 from the
    # tenth, 0.2032 without exploration; the rest is row-order exploration)
    explore_after: int = 10
    row_order: str = "learned"  # the row-order policy: learned (epsilon-greedy) or fixed (the device's default)
    row_order_epsilon: float = 0.1  # the row-order policy's share of random orders
    artwork_epsilon: float = 0.1  # the artwork policy's share of random variants
    context_weight: float = 0.1  # Top Picks: how far a learned daypart/weekend effect on plays may move a pick
    reward_window_ms: int = REWARD_WINDOW_MS  # an impression's clicks and plays count this long (one session)
    policy_publish_ms: int = 2_000  # the shared policy models to policy-updates, at most this often
    group_id: str = "nextwatch-rows"

    def __post_init__(self) -> None:
        try:
            _ = self.homepage  # the homepage's own checks, named as [rows] settings
        except ValueError as exc:
            raise ConfigError(f"[rows] {exc}") from exc
        if min(self.flush_ms, self.trending_refresh_ms, self.settings_refresh_ms, self.shared_refresh_ms,
               self.reward_window_ms, self.policy_publish_ms) < 1:
            raise ConfigError("[rows] refresh periods, flush_ms, reward_window_ms and policy_publish_ms must be "
                              ">= 1 ms")
        if self.max_flush_ms < self.flush_ms:
            raise ConfigError(f"[rows] max_flush_ms must be >= flush_ms, got {self.max_flush_ms} and {self.flush_ms}")
        if self.explore_after < 1:
            raise ConfigError(f"[rows] explore_after must be >= 1 (the first slot keeps the ranking), "
                              f"got {self.explore_after}")
        if self.row_order not in ROW_ORDER_POLICIES:
            raise ConfigError(f"[rows] row_order must be one of {', '.join(ROW_ORDER_POLICIES)}, "
                              f"got {self.row_order!r}")
        for name in ("explore_share", "row_order_epsilon", "artwork_epsilon", "context_weight"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"[rows] {name} must be in [0, 1], got {getattr(self, name)}")

    @property
    def homepage(self) -> HomepageSettings:
        return HomepageSettings(items_per_row=self.items_per_row, diversity=self.diversity,
                                popularity_penalty=self.popularity_penalty)

    @classmethod
    def load(cls) -> RowsJobConfig:
        return load_section(cls, "rows")


def new_policies(settings: RowsJobConfig) -> HomepagePolicies:
    """Untaught homepage policies with the job's exploration settings."""
    learned = RowOrderPolicy(ROW_KINDS, settings.row_order_epsilon)
    return HomepagePolicies(FixedRowOrder(learned) if settings.row_order == "fixed" else learned,
                            ArtworkPolicy(settings.artwork_epsilon), settings.explore_share,
                            context_weight=settings.context_weight, explore_after=settings.explore_after)


def variant_settings(base: RowsJobConfig, overrides: Mapping[str, str]) -> RowsJobConfig:
    """``base`` with an experiment variant's overrides (setting -> value as text), checked as at start.

    >>> variant_settings(RowsJobConfig(), {"diversity": "0.5"}).diversity
    0.5
    """
    types = {f.name: type(getattr(base, f.name)) for f in fields(base)}
    try:
        typed = {name: types[name](value) for name, value in overrides.items()}
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"[rows] experiment override {dict(overrides)}: {exc}") from exc
    return replace(base, **typed)


def served_policies(shared: HomepagePolicies, settings: RowsJobConfig) -> HomepagePolicies:
    """The shared policies with ``settings``' exploration (a variant's): the learned models are the same
    objects, not copies, so every variant serves with and teaches one set of models."""
    order: RowOrderPolicy = copy.copy(shared.order)
    order.epsilon = settings.row_order_epsilon
    if settings.row_order == "fixed":
        order = FixedRowOrder(shared.order)
    artwork = copy.copy(shared.artwork)
    artwork.epsilon = settings.artwork_epsilon
    return replace(shared, order=order, artwork=artwork, explore_share=settings.explore_share,
                   context_weight=settings.context_weight, explore_after=settings.explore_after)
