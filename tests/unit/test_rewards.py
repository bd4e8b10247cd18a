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


def test_outcomes_carry_the_experiments_the_token_names() -> None:
    join = ImpressionJoin(window_ms=MIN)
    tested = PresentationToken("rows-eg-1", 0.5, (0.9, 0.9, 0.01), (False, False, True), ("div:more", "art:b"))
    assert tested.encode().startswith("v2;") and TOKEN.encode().startswith("v1;")
    join.impression("imp-1", "top_picks", 0, ROW, PresentationToken.decode(tested.encode()), at_ms=0)
    join.impression("imp-2", "top_picks", 0, ROW, TOKEN, at_ms=0)
    by_impression = {o.impression_id: o.experiments for o in join.expire(now_ms=MIN)}
    assert by_impression == {"imp-1": ("div:more", "art:b"), "imp-2": ()}


def test_malformed_tokens_are_refused_with_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="not a presentation token"):
        PresentationToken.decode("v2;x;1;1;0")  # v2 has the experiments' part
    with pytest.raises(ValueError, match="not a presentation token"):
        PresentationToken.decode("v3;x;1;1;0;e:v")
    with pytest.raises(ValueError, match="experiment label"):
        PresentationToken.decode("v2;x;1;1;0;")
    with pytest.raises(ValueError, match="not a number"):
        PresentationToken.decode("v1;x;high;1;0")
    with pytest.raises(ValueError, match="propensity must be in"):
        PresentationToken.decode("v1;x;0;1;0")
    with pytest.raises(ValueError, match="one explored flag per item"):
        PresentationToken.decode("v1;x;1;1,1;0")
    assert PresentationToken.decode("v1;x;1;;") == PresentationToken("x", 1.0, (), ())


def test_clicks_and_plays_are_reported_as_they_join_with_the_artwork_the_impression_showed() -> None:
    join = ImpressionJoin(window_ms=30 * MIN)
    join.impression("imp-1", "top_picks", 0, ROW, TOKEN, at_ms=0)
    assert [(j.kind, j.title_id, j.artwork_id) for j in join.click("imp-1", "alien", at_ms=MIN)] == [
        ("CLICK", "alien", "alien-art1")]
    assert join.click("imp-1", "alien", at_ms=2 * MIN) == []  # clicked there before: one click per title
    assert join.click("imp-1", "not-shown", at_ms=MIN) == [] and join.click("imp-2", "heat", at_ms=MIN) == []
    assert [(j.kind, j.artwork_id) for j in join.play("alien", at_ms=3 * MIN)] == [("PLAY", "alien-art1")]
    assert join.play("alien", at_ms=4 * MIN) == []  # played again: the impression earned its play once
    assert join.play("heat", at_ms=4 * MIN) == []  # never clicked


def test_a_start_seen_before_its_click_still_rewards_it() -> None:
    # browse and play events arrive on different topics: the START may be read first
    join = ImpressionJoin(window_ms=30 * MIN)
    join.impression("imp-1", "top_picks", 0, ROW, TOKEN, at_ms=0)
    assert join.play("up", at_ms=2 * MIN) == []
    assert [j.kind for j in join.click("imp-1", "up", at_ms=MIN)] == ["CLICK", "PLAY"]
    up = next(o for o in join.expire(now_ms=30 * MIN) if o.title_id == "up")
    assert up.clicked and up.played
    join.impression("imp-2", "top_picks", 0, ROW, TOKEN, at_ms=40 * MIN)
    join.play("heat", at_ms=39 * MIN)  # started before this impression's click: not its play
    assert [j.kind for j in join.click("imp-2", "heat", at_ms=41 * MIN)] == ["CLICK"]
    # a backfill reads the play topic ahead: the click's own start is found among later ones
    join.impression("imp-3", "top_picks", 0, ROW, TOKEN, at_ms=100 * MIN)
    for at in (101, 300, 500):
        join.play("alien", at_ms=at * MIN)
    assert [j.kind for j in join.click("imp-3", "alien", at_ms=100 * MIN)] == ["CLICK", "PLAY"]


def test_clicks_and_plays_after_the_impressions_window_do_not_count() -> None:
    join = ImpressionJoin(window_ms=30 * MIN)
    join.impression("imp-1", "trending", 0, ROW, None, at_ms=0)
    assert join.click("imp-1", "heat", at_ms=31 * MIN) == []
    assert [j.kind for j in join.click("imp-1", "alien", at_ms=29 * MIN)] == ["CLICK"]
    assert join.play("alien", at_ms=31 * MIN) == []


def test_forget_drops_only_what_no_event_after_the_watermark_can_join() -> None:
    join = ImpressionJoin(window_ms=30 * MIN)
    join.impression("imp-1", "trending", 0, ROW, None, at_ms=0)
    join.play("heat", at_ms=5 * MIN)
    join.forget(watermark_ms=MIN)  # a click at 1 minute may still come, and pair with the start at 5
    assert [j.kind for j in join.click("imp-1", "heat", at_ms=MIN)] == ["CLICK", "PLAY"]
    join.forget(watermark_ms=30 * MIN)  # the window is still open at the watermark
    assert join.pending and not join.starts
    join.forget(watermark_ms=30 * MIN + 1)
    assert not join.pending and not join.early


def test_a_join_pickled_before_starts_were_remembered_still_loads() -> None:
    join = ImpressionJoin()
    join.impression("imp-1", "trending", 0, ROW, None, at_ms=0)
    before_starts = {k: v for k, v in vars(join).items() if k not in ("starts", "browse_ms", "play_ms")}
    restored = ImpressionJoin.__new__(ImpressionJoin)
    restored.__setstate__(before_starts)  # version 0: the object's dict, as default pickling wrote it
    assert restored.starts == [] and restored.play("heat", at_ms=1) == [] and list(restored.pending) == ["imp-1"]


def test_forget_drops_what_the_browse_topic_has_passed_unless_a_click_waits_for_its_play() -> None:
    # a backfill: the watermark lags hours behind, but the member's browse partition is read in order
    join = ImpressionJoin(window_ms=30 * MIN)
    join.impression("imp-1", "trending", 0, ROW, None, at_ms=0)
    join.impression("imp-2", "trending", 0, ROW, None, at_ms=MIN)
    join.click("imp-2", "heat", at_ms=2 * MIN)
    join.play("up", at_ms=3 * MIN)
    join.impression("imp-3", "trending", 0, ROW, None, at_ms=40 * MIN)
    join.forget(watermark_ms=0, out_of_order_ms=5_000)
    assert list(join.pending) == ["imp-2", "imp-3"]  # imp-2's click on heat may still get its play
    assert not join.starts  # no click to come is older than 40 minutes
    assert [j.kind for j in join.play("heat", at_ms=4 * MIN)] == ["PLAY"]
    join.forget(watermark_ms=0, out_of_order_ms=5_000)
    assert list(join.pending) == ["imp-3"]


def test_starts_are_bounded_and_expire_with_the_window() -> None:
    join = ImpressionJoin(window_ms=30 * MIN, max_starts=3)
    for n in range(5):
        join.play(f"t{n}", at_ms=n * MIN)
    assert [t for t, _, _ in join.starts] == ["t2", "t3", "t4"]  # the oldest go first
    join.expire(now_ms=32 * MIN + 1)
    assert [t for t, _, _ in join.starts] == ["t3", "t4"]


def test_a_start_that_names_its_impression_rewards_the_click_there_and_nowhere_else() -> None:
    join = ImpressionJoin(window_ms=30 * MIN)
    join.impression("imp-1", "top_picks", 0, ROW, TOKEN, at_ms=0)
    join.impression("imp-2", "trending", 1, ROW, TOKEN, at_ms=MIN)
    join.click("imp-1", "heat", at_ms=2 * MIN)
    join.click("imp-2", "heat", at_ms=3 * MIN)
    assert [(j.kind, j.impression_id) for j in join.play("heat", 4 * MIN, impression_id="imp-1")] == [
        ("PLAY", "imp-1")]  # not the latest click (imp-2): the START says where it came from
    assert join.play("heat", 5 * MIN, impression_id="imp-9") == []  # an impression not held: no guess
    # read before its click, a START that names another impression is not this click's play
    join.impression("imp-3", "top_picks", 0, ROW, TOKEN, at_ms=10 * MIN)
    join.play("alien", 12 * MIN, impression_id="imp-elsewhere")
    assert [j.kind for j in join.click("imp-3", "alien", at_ms=11 * MIN)] == ["CLICK"]
    join.play("up", 12 * MIN, impression_id="imp-3")
    assert [j.kind for j in join.click("imp-3", "up", at_ms=11 * MIN)] == ["CLICK", "PLAY"]
