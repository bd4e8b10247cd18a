"""Pseudonymous member ids: the SDK hashes account ids with a secret key; the jobs and the API take member
ids only."""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import pytest

from connectors.config import KafkaConfig
from connectors.errors import ConfigError
from connectors.privacy import MemberIds, PrivacyConfig, is_member_id
from connectors.producer import EventProducer
from jobs.runtime import MEMBER_IDS_ONLY, DecodeEvents
from tests import factories
from tests.flink_fakes import OperatorHarness

KEY = "a-test-key-of-at-least-thirty-two-bytes"


def test_member_ids_are_stable_per_key_and_unrelated_across_keys() -> None:
    one, other = MemberIds(KEY.encode()), MemberIds((KEY + "!").encode())
    assert one.member_id("account-1") == one.member_id("account-1") != one.member_id("account-2")
    assert one.member_id("account-1") != other.member_id("account-1")
    assert all(is_member_id(ids.member_id("account-1")) for ids in (one, other))
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        MemberIds(b"short")


def test_the_key_is_never_shown_or_carried() -> None:
    ids = MemberIds(KEY.encode())
    config = PrivacyConfig(pseudonymous_ids=True, key=KEY)
    assert KEY not in repr(ids) and KEY not in repr(config)
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(ids)


def test_the_key_comes_from_the_environment_or_a_file_never_the_config_file(tmp_path: Path) -> None:
    assert PrivacyConfig.load(env={"NEXTWATCH_PRIVACY_PSEUDONYMOUS_IDS": "true", "NEXTWATCH_PRIVACY_KEY": KEY},
                              file_data={}).member_ids() is not None
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    from_file = PrivacyConfig.load(env={}, file_data={"privacy": {"pseudonymous_ids": True,
                                                                  "key_file": str(key_file)}}).member_ids()
    assert from_file is not None and from_file.member_id("a") == MemberIds(KEY.encode()).member_id("a")
    with pytest.raises(ConfigError, match="never in the file"):
        PrivacyConfig.load(env={}, file_data={"privacy": {"pseudonymous_ids": True, "key": KEY}})
    with pytest.raises(ConfigError, match="needs the key"):
        PrivacyConfig(pseudonymous_ids=True).member_ids()
    with pytest.raises(ConfigError, match="give one"):
        PrivacyConfig(pseudonymous_ids=True, key=KEY, key_file=str(key_file))
    assert PrivacyConfig().member_ids() is None  # off by default: ids pass as they are


def _sent(producer: EventProducer) -> list[tuple[str, bytes, bytes]]:
    sent: list[tuple[str, bytes, bytes]] = []
    producer.send_encoded = lambda topic, key, value, *args, **kw: sent.append((topic, key, value))  # type: ignore
    return sent


def test_the_sdk_sends_member_ids_and_no_account_id_leaves_it() -> None:
    privacy = PrivacyConfig(pseudonymous_ids=True, key=KEY)
    producer = EventProducer(KafkaConfig(), check_broker=False, privacy=privacy)
    sent = _sent(producer)
    play, rating = factories.make_play(user_id="account-7"), factories.make_rating(user_id="account-7")
    producer.send(play)
    producer.send_many([rating])
    member = MemberIds(KEY.encode()).member_id("account-7")
    assert [key for _, key, _ in sent] == [member.encode(), member.encode()]
    assert all(b"account-7" not in value for _, _, value in sent)
    assert {producer.codec.decode_event(value).user_id for _, _, value in sent} == {member}
    # a producer of member ids (the API's page) sends them as they are
    pages = EventProducer(KafkaConfig(), check_broker=False, privacy=privacy, account_ids=False)
    page_sent = _sent(pages)
    pages.send(factories.make_play(user_id=member))
    assert page_sent[0][1] == member.encode()


def _decoder(member_ids_only: bool) -> OperatorHarness:
    harness = OperatorHarness(DecodeEvents("nextwatch-test", dead_letters=True))
    harness.job_parameters[MEMBER_IDS_ONLY] = str(member_ids_only).lower()
    return harness.open()


def test_a_job_with_pseudonymous_ids_drops_an_account_id_without_copying_it() -> None:
    from connectors.codec import EventCodec

    codec = EventCodec()
    member = MemberIds(KEY.encode()).member_id("account-9")
    strict = _decoder(True)
    out = strict.process(codec.encode(factories.make_play(user_id="account-9")))
    assert out.main == [] and out.side == {}  # not dead-lettered: that would keep the account id
    assert strict.metrics["not_applied_not_member_id"] == 1 and strict.metrics["events_invalid"] == 1
    assert [e.user_id for e in strict.process(codec.encode(factories.make_play(user_id=member))).main] == [member]
    # without the setting, any id is taken
    assert _decoder(False).process(codec.encode(factories.make_play(user_id="account-9"))).main


def test_the_api_takes_member_ids_only_when_ids_are_pseudonymous() -> None:
    from infra.serve.app import ServeApp
    from infra.serve.config import ServeConfig
    from infra.serve.metrics import ServeMetrics
    from tests.unit.test_serve import NOW, FakeReads, _catalog, call

    def app(member_ids_only: bool) -> Any:
        return ServeApp(ServeConfig(), FakeReads(), _catalog("t1"), ServeMetrics(), now_ms=lambda: NOW,
                        member_ids_only=member_ids_only)

    status, _, body = call(app(True), "/v1/members/account-9/homepage")
    assert status == 422 and b"member id" in body and b"account-9" not in body.split(b"must")[1]
    member = MemberIds(KEY.encode()).member_id("account-9")
    assert call(app(True), f"/v1/members/{member}/homepage")[0] in (200, 404)  # looked up
    assert call(app(False), "/v1/members/account-9/homepage")[0] in (200, 404)


def test_an_erasure_request_is_a_contract_the_jobs_read_and_the_sdk_sends_for_the_member() -> None:
    from connectors.codec import EventCodec
    from connectors.errors import InvalidEventError
    from connectors.events import ErasureRequest, check_semantics
    from connectors.topics import TOPICS_BY_NAME

    now = int(time.time() * 1000)
    request = ErasureRequest("m-1", now, reason="asked by the member")
    assert request.event_id == "erase:m-1"  # one request per member: a compacted topic keeps the newest
    [decoded] = _decoder(False).process(EventCodec().encode(request)).main  # on the jobs' event path
    assert (type(decoded), decoded.user_id, decoded.event_id, decoded.reason) == (
        ErasureRequest, "m-1", "erase:m-1", "asked by the member")
    for bad, field in ((ErasureRequest("", now), "user_id"),
                       (ErasureRequest("m-1", now, reason="x" * 201), "reason"),
                       (ErasureRequest("m-1", now, event_id="erase:m-2"), "event_id")):
        with pytest.raises(InvalidEventError, match=field):
            check_semantics(bad, now_ms=now)
    spec = TOPICS_BY_NAME["erasures"]
    assert spec.config == {"cleanup.policy": "compact", "retention.ms": "-1"} and spec.key_field == "user_id"
    # an app holding account ids asks for the member id's erasure; the account id never leaves the SDK
    producer = EventProducer(KafkaConfig(), check_broker=False, privacy=PrivacyConfig(pseudonymous_ids=True, key=KEY))
    sent = _sent(producer)
    producer.send(ErasureRequest("account-7", now))
    member = MemberIds(KEY.encode()).member_id("account-7")
    assert sent[0][1] == member.encode() and b"account-7" not in sent[0][2]
    assert producer.codec.decode_event(sent[0][2]).event_id == f"erase:{member}"


def test_the_erase_command_takes_member_ids_or_with_account_an_account_id() -> None:
    from connectors.errors import NextwatchError
    from infra.members import member_to_erase

    on = PrivacyConfig(pseudonymous_ids=True, key=KEY)
    member = MemberIds(KEY.encode()).member_id("account-7")
    assert member_to_erase("account-7", account=True, privacy=on) == member
    assert member_to_erase(member, privacy=on) == member
    with pytest.raises(NextwatchError, match="no member id"):
        member_to_erase("account-7", privacy=on)
    assert member_to_erase("u1", privacy=PrivacyConfig()) == "u1"  # ids are not pseudonymous: any id
    with pytest.raises(NextwatchError, match="--account needs"):
        member_to_erase("account-7", account=True, privacy=PrivacyConfig())
