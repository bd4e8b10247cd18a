"""The erased members each ``nextwatch serve`` worker follows: it answers nothing for them and drops their
cached answers. Digests only (:func:`connectors.privacy.erasure_digest`), as the jobs keep them."""

from __future__ import annotations

from typing import Any

from connectors.follower import TopicFollower
from connectors.privacy import erasure_digest


class ErasedMembersReplica(TopicFollower):
    """Every erasure request on the compacted erasures topic, from its beginning, as digests."""

    TOPIC, SUBJECT = "erasures", "erasure_request"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.digests: set[str] = set()

    def apply_record(self, record: dict[str, Any]) -> bool:
        return self.add(str(record["user_id"]))

    def add(self, member_id: str) -> bool:
        digest = erasure_digest(member_id)
        if digest in self.digests:
            return False
        self.digests.add(digest)  # one set update: safe to read from the serving thread
        return True
