"""The impression -> click -> play join and the presentation token impressions echo back."""

from __future__ import annotations

import pytest

from jobs.exploration.rewards import ImpressionJoin, PresentationToken

ROW = [("heat", 0, "heat-art0"), ("alien", 1, "alien-art1"), ("up", 2, "up-art0")]
TOKEN = PresentationToken("rows-eg-1", 0.5, (0.9, 0.9, 0.01), (False, False, True))
MIN = 60_000


def test_a_click_then_a_play_in_the_window_rewards_that_item_only() -> None:
    join = ImpressionJoin(window_ms=30 * MIN)
    join.impression("imp-1", "top_picks", 2, ROW, TOKEN, at_ms=0)
    join.impression("imp-1", "top_picks", 2, ROW, TOKEN, at_ms=1)  # a duplicate delivery: ignored
    join.click("imp-1", "up", at_ms=MIN)
    join.click("imp-1", "not-shown", at_ms=MIN)  # a click on a title the row did not show: ignored
    join.click("imp-unknown", "heat", at_ms=MIN)
    join.play("up", at_ms=2 * MIN)
    join.play("heat", at_ms=2 * MIN)  # played without a click on this impression: no reward here
    assert join.expire(now_ms=29 * MIN) == []  # still open
    outcomes = join.expire(now_ms=30 * MIN)
    assert [(o.title_id, o.clicked, o.played, o.explored, o.item_propensity) for o in outcomes] == [
        ("heat", False, False, False, 0.9), ("alien", False, False, False, 0.9), ("up", True, True, True, 0.01)]
    assert {(o.row_id, o.row_position, o.policy_version, o.row_propensity) for o in outcomes} == {
        ("top_picks", 2, "rows-eg-1", 0.5)}
    assert join.expire(now_ms=90 * MIN) == [] and not join.pending


def test_a_play_long_after_the_click_is_not_its_reward() -> None:
    join = ImpressionJoin(window_ms=30 * MIN)
    join.impression("imp-1", "trending", 0, ROW, None, at_ms=0)
    join.click("imp-1", "heat", at_ms=MIN)
    join.play("heat", at_ms=40 * MIN)
    (heat, *_rest) = join.expire(now_ms=60 * MIN)
    assert heat.clicked and not heat.played
    assert (heat.policy_version, heat.row_propensity, heat.item_propensity) == ("", 1.0, 1.0)  # no token: unlogged


def test_held_impressions_are_bounded_and_the_oldest_finalize_early_not_lost() -> None:
    join = ImpressionJoin(window_ms=30 * MIN, max_pending=3)
    for n in range(5):
        join.impression(f"imp-{n}", "trending", 0, ROW[:1], TOKEN.__class__("p", 1.0, (1.0,), (False,)), at_ms=n)
    assert len(join.pending) == 3
    early = join.expire(now_ms=10)
    assert [o.impression_id for o in early] == ["imp-0", "imp-1"]


def test_a_token_that_does_not_describe_the_row_is_not_trusted() -> None:
    join = ImpressionJoin()
    join.impression("imp-1", "trending", 0, ROW[:2], TOKEN, at_ms=0)  # 3 propensities for 2 items
    assert {o.policy_version for o in join.expire(now_ms=10**9)} == {""}


def test_malformed_tokens_are_refused_with_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="not a v1 presentation token"):
        PresentationToken.decode("v2;x;1;1;0")
    with pytest.raises(ValueError, match="not a number"):
        PresentationToken.decode("v1;x;high;1;0")
    with pytest.raises(ValueError, match="propensity must be in"):
        PresentationToken.decode("v1;x;0;1;0")
    with pytest.raises(ValueError, match="one explored flag per item"):
        PresentationToken.decode("v1;x;1;1,1;0")
    assert PresentationToken.decode("v1;x;1;;") == PresentationToken("x", 1.0, (), ())
