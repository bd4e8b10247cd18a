"""A homepage as served: the policy's row order, bounded exploration, artwork per member, a token per row."""

from __future__ import annotations

import math
import random
from dataclasses import replace

from connectors.events import ArtworkVariant, Availability, CatalogItem
from jobs.exploration.policies import ArtworkPolicy, RowOrderPolicy, context_features
from jobs.exploration.presentation import ROW_KINDS, HomepagePolicies, presented_homepage, row_kind
from jobs.exploration.rewards import PresentationToken
from jobs.homepage.rows import HomepageSettings, SharedSignals, catalog_indexes, least_played, row_order
from tests.unit.test_homepage import FAN, NOW, VIEWER, title

THEMES = ("dark", "couple", "action")


def catalog() -> dict[str, CatalogItem]:
    items = {}
    for n in range(80):
        art = [ArtworkVariant(f"t{n}-art{v}", "https://art/x.jpg", [THEMES[(n + v) % 3]]) for v in range(3)]
        items[f"t{n}"] = title(n, artwork=art)
    items["t79"] = replace(items["t79"], availability=Availability(NOW - 10 * 86_400_000, ["FR"]))  # not in the US
    return items


def shared() -> SharedSignals:
    items = catalog()
    popularity = {t: 1.0 - int(t[1:]) / 80 for t in items}
    by_genre, newest = catalog_indexes(items, popularity)
    similar = {t: [(u, 0.5) for u in list(items)[:30] if u != t] for t in items}
    return SharedSignals(items, similar, {"global": [f"t{n}" for n in range(10)]}, popularity, {}, by_genre, newest,
                         least_played(items, popularity, 40))


def serve(policies: HomepagePolicies, seed: int, bucket: str = "evening:tv") -> list:
    settings = HomepageSettings(items_per_row=10)
    return presented_homepage(FAN, shared(), VIEWER, bucket, "mon", settings, policies, random.Random(seed))


def test_every_row_carries_a_token_that_describes_it_and_continue_watching_is_not_explored() -> None:
    policies = HomepagePolicies(RowOrderPolicy(ROW_KINDS, 0.1), ArtworkPolicy(0.1), explore_share=0.2)
    rows = serve(policies, seed=1)
    assert rows[0].row_id == "continue_watching"
    for row in rows:
        token = PresentationToken.decode(row.token)
        assert token.policy_version == policies.version and len(token.item_propensities) == len(row.items)
        assert all(0 < p <= 1 for p in token.item_propensities)
        if row.row_id == "continue_watching":
            assert token.row_propensity == 1.0 and not any(token.explored[i] and row.items[i].reason == "exploring"
                                                           for i in range(len(row.items)))
        else:
            explored = [i for i, item in enumerate(row.items) if item.reason == "exploring"]
            assert len(explored) <= math.ceil(0.2 * len(row.items)) and 0 not in explored
            assert all(token.explored[i] for i in explored)


def test_explored_titles_obey_the_rules_and_the_page_shows_each_title_once() -> None:
    policies = HomepagePolicies(RowOrderPolicy(ROW_KINDS, 0.1), ArtworkPolicy(0.1), explore_share=0.3)
    items = catalog()
    for seed in range(20):
        rows = serve(policies, seed)
        titles = [item.title_id for row in rows for item in row.items]
        assert len(titles) == len(set(titles))
        explored = {i.title_id for r in rows for i in r.items if i.reason == "exploring"}
        assert explored and not explored & FAN.completed and "t79" not in explored  # t79: not in the viewer's US
        for row in rows:  # every artwork is one of that title's own variants
            for item in row.items:
                assert item.artwork_id in {a.artwork_id for a in items[item.title_id].artwork}


def test_with_no_evidence_the_order_is_the_devices_default_and_exploration_only_adds_random_orders() -> None:
    greedy = HomepagePolicies(RowOrderPolicy(ROW_KINDS, 0.0), ArtworkPolicy(0.0), explore_share=0.0)
    for bucket in ("evening:tv", "morning:mobile"):
        kinds = list(dict.fromkeys(row_kind(r.row_id) for r in serve(greedy, seed=3, bucket=bucket)))
        expected = [k for k in row_order(bucket) if k in kinds]
        assert kinds == expected
        tokens = [PresentationToken.decode(r.token) for r in serve(greedy, seed=3, bucket=bucket)]
        assert all(not any(t.explored) for t in tokens)


def test_the_rows_state_turns_impressions_clicks_and_plays_into_rewards_that_reorder_rows() -> None:
    """A member who, in the evening, only ever clicks and plays from Trending gets Trending first."""
    from connectors.events import BrowseEvent, Context, PlayEvent, ShownItem
    from jobs.exploration.presentation import MemberContext, learn_from_outcomes, row_kind
    from jobs.homepage.state import RowsUser

    policies = HomepagePolicies(RowOrderPolicy(ROW_KINDS, 0.2), ArtworkPolicy(0.1), explore_share=0.0)
    rng, items, member = random.Random(8), shared(), RowsUser(utc_offset_minutes=0, device_class="TV")
    tv = Context("tv-1", "TV", "US", 0)
    evening = NOW - NOW % 86_400_000 + 19 * 3_600_000  # 19:00 UTC
    learned = 0
    for n in range(150):
        at = evening + n * 1_000
        page = presented_homepage(FAN, items, replace(VIEWER, now_ms=at), "evening:tv", "mon",
                                  HomepageSettings(items_per_row=5), policies, rng, member.theme_history)
        for position, row in enumerate(page):
            shown = [ShownItem(i.title_id, slot, i.artwork_id) for slot, i in enumerate(row.items)]
            member.apply_event(BrowseEvent("u1", at, tv, "IMPRESSION", f"imp-{n}-{position}", "home", row.row_id,
                                           position, shown, presentation_token=row.token))
            if row_kind(row.row_id) == "trending" and position <= 2:  # seen without scrolling: clicked, played
                member.apply_event(BrowseEvent("u1", at + 1, tv, "CLICK", f"imp-{n}-{position}", "home",
                                               row.row_id, position, title_id=row.items[0].title_id))
                member.apply_event(PlayEvent("u1", at + 2, tv, row.items[0].title_id, "START", f"pb-{n}", 0,
                                             3_600_000))
        outcomes = member.outcomes(at + member.join.window_ms)
        learned += learn_from_outcomes(outcomes, policies, MemberContext(FAN.genre_affinity, member.theme_history,
                                                                         0, "TV"), items.catalog)
    assert learned > 150 and not member.join.pending
    first = policies.order.greedy(context_features("evening:tv", "mon", FAN.genre_affinity),
                                  [k for k in row_order("evening:tv") if k in ROW_KINDS])
    assert first[0] == "trending"  # the default order had it fourth
    assert sum(member.theme_history.shown.values()) > 0  # every shown artwork was counted for the member


def test_a_learned_late_night_taste_for_short_titles_reorders_top_picks_there_only() -> None:
    from jobs.exploration.policies import ContextPlayModel
    from jobs.exploration.presentation import contextual_picks
    from tests.unit.test_exploration import simulate_plays

    plays = ContextPlayModel()
    simulate_plays(plays, late_night_short=0.5, rng=random.Random(11))
    items = {"long": title(1, title_id="long", runtime_minutes=110, genres=["Drama"]),
             "short": title(2, title_id="short", runtime_minutes=25, genres=["Drama"])}
    picks = (("long", 1.0, "item_cf"), ("short", 0.97, "item_cf"))  # the models slightly prefer the long one
    night = contextual_picks(picks, plays.for_context("late_night:tv", "tue"), items, weight=0.1)
    evening = contextual_picks(picks, plays.for_context("evening:tv", "tue"), items, weight=0.1)
    assert [t for t, _, _ in night] == ["short", "long"]
    assert [t for t, _, _ in evening] == ["long", "short"]
    untrained = contextual_picks(picks, ContextPlayModel().for_context("late_night:tv", "tue"), items, 0.1)
    assert untrained == picks  # no evidence, no change
