"""``nextwatch members erase``: forget one member everywhere the pipeline keeps them.

In this order, so that whatever reads the ledger after a job has handled the request finds the member: the
ledger row (a digest), the request on the compacted ``erasures`` topic, then the member's rows in every
member-keyed table. Each job deletes the rows again after its last write for the member (``infra/topology.md``
says how erasure reaches every topic and table).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from connectors.cassandra_store import connect
from connectors.config import CassandraConfig, KafkaConfig
from connectors.erasure_store import ErasureStore, erase_member_rows
from connectors.errors import NextwatchError
from connectors.events import ErasureRequest, check_semantics
from connectors.privacy import PrivacyConfig, is_member_id
from connectors.producer import EventProducer
from connectors.topics import TOPICS_BY_NAME


@dataclass(frozen=True)
class Erasure:
    """What ``erase`` did."""

    member_id: str
    digest: str
    topic: str
    tables: tuple[str, ...]


def member_to_erase(given: str, account: bool = False, privacy: PrivacyConfig | None = None) -> str:
    """The member id to erase: ``given`` itself, or with ``account`` the member id of that account id. With
    pseudonymous ids on, a plain id that is no member id is refused (it would name nobody the jobs know)."""
    privacy = privacy or PrivacyConfig.load()
    if account:
        member_ids = privacy.member_ids()
        if member_ids is None:
            raise NextwatchError("--account needs [privacy] pseudonymous_ids = true and its key: without them "
                                 "account ids are member ids, give the id itself")
        return member_ids.member_id(given)
    if privacy.pseudonymous_ids and not is_member_id(given):
        raise NextwatchError(f"{given!r} is no member id (m- and 32 hex digits) and [privacy] pseudonymous_ids is "
                             "on: give the member id, or the account id with --account")
    return given


def erase(member_id: str, reason: str = "", kafka: KafkaConfig | None = None,
          cassandra: CassandraConfig | None = None) -> Erasure:
    """Forget ``member_id`` (a member id, as the jobs and the API know members)."""
    kafka, cassandra = kafka or KafkaConfig.load(), cassandra or CassandraConfig.load()
    request = ErasureRequest(member_id, int(time.time() * 1000), reason)
    check_semantics(request)  # names what is wrong with the id or the reason before anything is written
    session = connect(cassandra, cassandra.keyspace)
    try:
        digest = ErasureStore(session, cassandra.keyspace).record(member_id, request.event_time_ms, reason)
        with EventProducer(kafka, account_ids=False) as producer:
            producer.send(request)
            producer.flush()
        tables = erase_member_rows(session, cassandra.keyspace, member_id)
    finally:
        session.cluster.shutdown()
    return Erasure(member_id, digest, TOPICS_BY_NAME["erasures"].full_name(kafka), tuple(tables))
