"""Bounded everything: the SDK refuses what is over a bound by field, the decoder dead-letters it, records stay
under the sinks' limit."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.codec import EventCodec
from connectors.errors import ConfigError, InvalidEventError
from connectors.events import ArtworkVariant, ShownItem
from connectors.limits import Limits
from connectors.schemas import SchemaStore
from jobs.decoding import decode_message
from jobs.records.rejected_event import content_id, rejection_record
from jobs.runtime import DecodeEvents, RecordBound
from tests import factories
from tests.flink_fakes import FakeMetricGroup, OperatorHarness

CODEC = EventCodec()


def _refused(event: Any, codec: EventCodec = CODEC) -> InvalidEventError:
    with pytest.raises(InvalidEventError) as refused:
        codec.encode(event)
    return refused.value


def test_limits_load_from_file_and_environment_and_refuse_nonsense() -> None:
    limits = Limits.load(env={"NEXTWATCH_LIMITS_QUERY_CHARS": "64"}, file_data={"limits": {"message_bytes": 1000}})
    assert (limits.query_chars, limits.message_bytes, limits.record_bytes) == (64, 1000, 256 * 1024)
    with pytest.raises(ConfigError, match="unknown keys"):
        Limits.load(env={}, file_data={"limits": {"messages": 1}})
    with pytest.raises(ConfigError, match="dead_letter_bytes must leave room"):
        Limits.load(env={"NEXTWATCH_LIMITS_DEAD_LETTER_BYTES": str(1024 * 1024)}, file_data={})


@pytest.mark.parametrize(("event", "field"), [
    (factories.make_search(query="q" * 257), "SearchEvent.query"),
    (factories.make_search(result_title_ids=[f"t{n}" for n in range(201)]), "SearchEvent.result_title_ids"),
    (factories.make_search(result_title_ids=["t1", "x" * 129]), "SearchEvent.result_title_ids[1]"),
    (factories.make_click(position_in_row=-1), "BrowseEvent.position_in_row"),
    (factories.make_impression(row_position=-2), "BrowseEvent.row_position"),
    (factories.make_impression(items=[ShownItem("t1", 0), ShownItem("t2", -1)]),
     "BrowseEvent.items[1].position_in_row"),
    (factories.make_impression(items=[ShownItem(f"t{n}", n) for n in range(201)]), "BrowseEvent.items"),
    (factories.make_impression(page="p" * 129), "BrowseEvent.page"),
    (factories.make_impression(presentation_token="v" * 4097), "BrowseEvent.presentation_token"),
    (factories.make_play(impression_id="i" * 129), "PlayEvent.impression_id"),
    (factories.make_play(context=factories.make_context(app_version="9" * 129)), "PlayEvent.context.app_version"),
    (factories.make_play(user_id="u" * 1_000_000), "PlayEvent.user_id"),
    (factories.make_catalog_item(synopsis="s" * 4097), "CatalogItem.synopsis"),
    (factories.make_catalog_item(cast=["c" * 257]), "CatalogItem.cast[0]"),
    (factories.make_catalog_item(artwork=[ArtworkVariant("a1", "u" * 4097)]), "CatalogItem.artwork[0].uri"),
    (factories.make_catalog_item(release_year=1_700_000_000), "CatalogItem.release_year"),
    (factories.make_catalog_item(runtime_minutes=7_200_000), "CatalogItem.runtime_minutes"),
])
def test_the_sdk_refuses_a_field_over_its_bound_by_name_with_a_short_reason(event: Any, field: str) -> None:
    refused = _refused(event)
    assert f"{field}:" in str(refused)
    assert len(str(refused)) < 300  # the value is shown cut, never whole


def test_values_at_their_bounds_are_accepted() -> None:
    CODEC.encode(factories.make_search(query="q" * 256))
    CODEC.encode(factories.make_impression(items=[ShownItem(f"t{n}", n) for n in range(200)]))
    CODEC.encode(factories.make_click(position_in_row=0))


def test_the_sdk_refuses_a_message_over_the_message_bound() -> None:
    # every field within its bound, the whole over 64 KiB
    item = factories.make_catalog_item(cast=["c" * 256] * 200, tags=["t" * 256] * 200)
    assert "over the message limit of 65536" in str(_refused(item))
    small = EventCodec(limits=Limits(message_bytes=50))
    assert "encodes to" in str(_refused(factories.make_play(), small))


def test_the_decoder_does_not_decode_an_oversize_or_empty_message() -> None:
    data = CODEC.encode(factories.make_play())
    event, rejection = decode_message(CODEC, data, factories.now_ms(), Limits(message_bytes=len(data) - 1))
    assert event is None and rejection is not None and rejection.code == "oversize"
    assert f"message is {len(data)} bytes" in rejection.reason
    for empty in (b"", None):
        event, rejection = decode_message(CODEC, empty, factories.now_ms())
        assert event is None and rejection is not None and rejection.code == "empty_value"
    # a contract violation arrives with its code; its reason is cut whatever the input
    huge = CODEC.encode(factories.make_search(query="q" * 256))
    event, rejection = decode_message(CODEC, huge, factories.now_ms(), Limits(query_chars=10))
    assert rejection is not None and rejection.code == "contract" and "SearchEvent.query" in rejection.reason


def test_a_dead_letter_record_is_cut_to_its_bound_and_keeps_the_whole_length_and_digest() -> None:
    limits = Limits(dead_letter_bytes=64 * 1024)
    original = bytes(range(256)) * 4096  # 1 MiB
    record = rejection_record("OVERSIZE", "x" * 5000, "nextwatch-test", original, reason_code="oversize",
                              limits=limits)
    encoded = CODEC.encode_record("rejected_event", record)
    assert len(encoded) <= limits.dead_letter_bytes
    back = CODEC.decode(encoded).record
    assert back["original_cut"] is True and back["original_length"] == len(original)
    assert back["original_digest"] == content_id(original) and original.startswith(back["original"])
    assert len(back["reason"]) == 1024 and back["reason_code"] == "oversize" and back["kind"] == "OVERSIZE"
    small = rejection_record("INVALID", "junk", "nextwatch-test", b"junk")
    assert small["original"] == b"junk" and small["original_cut"] is False and small["original_length"] == 4


def test_the_first_version_of_the_dead_letter_contract_reads_the_new_records() -> None:
    record = rejection_record("CONFLICT", "another event under a used id", "j", b"abc", reason_code="event_id_conflict")
    v1 = CODEC.decode(CODEC.encode_record("rejected_event", record), reader_version=1).record
    assert v1["kind"] == "UNKNOWN" and v1["original"] == b"abc"  # an older reader maps a new kind to its default
    assert SchemaStore().latest("rejected_event").version == 2


def test_the_decode_step_dead_letters_oversize_and_empty_messages_and_counts_each_reason() -> None:
    limits = Limits(message_bytes=1024, dead_letter_bytes=16 * 1024)
    harness = OperatorHarness(DecodeEvents("nextwatch-test", dead_letters=True, limits=limits)).open()
    big = b"\xc3\x01" + b"z" * 100_000
    out = harness.process(big).side["dead-letter"] + harness.process(b"").side["dead-letter"] \
        + harness.process(b"junk").side["dead-letter"]
    records = [CODEC.decode(bytes(row[1])).record for row in out]
    assert [r["reason_code"] for r in records] == ["oversize", "empty_value", "undecodable"]
    assert [r["kind"] for r in records] == ["OVERSIZE", "INVALID", "INVALID"]
    assert records[0]["original_cut"] and records[0]["original_length"] == len(big)
    assert all(len(row[1]) <= limits.dead_letter_bytes for row in out)
    metrics = harness.metrics
    assert (metrics["not_applied_oversize"], metrics["not_applied_empty_value"], metrics["not_applied_undecodable"],
            metrics["events_invalid"]) == (1, 1, 1, 3)


def test_a_record_over_its_bound_is_counted_and_not_sent() -> None:
    metrics = FakeMetricGroup()
    bound = RecordBound(metrics, "user-features", Limits(record_bytes=10))
    assert bound.row(b"k", b"0123456789") is not None
    assert bound.row(b"k", b"0123456789!") is None
    assert metrics.values()["not_applied_record_oversize"] == 1


def test_a_members_feature_state_and_record_stay_bounded_whatever_they_send() -> None:
    from jobs.features.user_state import GENRE_AFFINITY_MAX, TitleInfo, UserState
    from jobs.records.user_features import profile_record

    state = UserState()
    for n in range(2_000):
        title = TitleInfo(tuple(f"genre-{n}-{g}" + "x" * 200 for g in range(3)), 90)
        state.apply(factories.make_rating(event_id=f"r{n}", title_id=f"t{n}"), title)
        state.apply(factories.make_search(event_id=f"s{n}", query=f"{n}" + "q" * 250))
    assert len(state.profile.genre_affinity) <= GENRE_AFFINITY_MAX * 3 // 2
    record = CODEC.encode_record("user_features", profile_record("u1", state.profile, state.last_event_id))
    assert len(record) <= Limits().record_bytes
