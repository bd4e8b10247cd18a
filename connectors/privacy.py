"""Pseudonymous member ids: the producer SDK turns an app's account id into a member id with a keyed hash
(HMAC-SHA-256), so no account id reaches Kafka, Flink or Cassandra.

The key comes from the environment (``NEXTWATCH_PRIVACY_KEY``) or a file (``[privacy] key_file``, a mounted
Secret); it is never read from the config file, never printed and never logged. A member id is ``m-`` and 32
hex digits (128 bits of the HMAC): the same account gives the same member id under one key, and another key
gives unrelated ids (``docs/privacy.md``: rotating the key).

>>> ids = MemberIds(b"k" * 32)
>>> member = ids.member_id("account-42")
>>> member.startswith("m-") and len(member) == 34 and ids.member_id("account-42") == member
True
>>> is_member_id(member), is_member_id("account-42")
(True, False)
>>> "kkkk" in repr(ids)
False
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.config import load_section, read_config_file
from connectors.errors import ConfigError

PREFIX = "m-"
MEMBER_ID = re.compile(r"^m-[0-9a-f]{32}$")
MIN_KEY_BYTES = 32


ERASURE_DIGEST_TAG = b"nextwatch-erased-member:"


def erasure_digest(member_id: str) -> str:
    """What the erasure ledger and the jobs keep of an erased member: SHA-256 of the id under a fixed tag.

    Unkeyed, so that every job and service can compute it without the member-id key; one-way, so that
    nothing kept holds the id. Whoever has a member id can test whether it was erased, nothing more.

    >>> erasure_digest("m-1") == erasure_digest("m-1") != erasure_digest("m-2")
    True
    >>> "m-1" in erasure_digest("m-1"), len(erasure_digest("m-1"))
    (False, 64)
    """
    return hashlib.sha256(ERASURE_DIGEST_TAG + member_id.encode()).hexdigest()


def is_member_id(text: str) -> bool:
    return MEMBER_ID.match(text) is not None


class MemberIds:
    """Account id -> member id under one key. The key stays inside: not in ``repr``, not picklable."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"[privacy] the member-id key must be at least {MIN_KEY_BYTES} bytes, got "
                              f"{len(key)}")
        self._key = key

    def member_id(self, account_id: str) -> str:
        digest = hmac.new(self._key, account_id.encode(), hashlib.sha256).hexdigest()
        return PREFIX + digest[:32]

    def __repr__(self) -> str:
        return "MemberIds(key=***)"

    def __reduce__(self) -> Any:
        raise TypeError("MemberIds holds a secret key and is not pickled")


@dataclass(frozen=True)
class PrivacyConfig:
    """``[privacy]``: whether the SDK pseudonymizes, and where its key is."""

    pseudonymous_ids: bool = False
    key_file: str = ""  # a file holding the key (e.g. a mounted Kubernetes Secret)
    key: str = field(default="", repr=False)  # NEXTWATCH_PRIVACY_KEY only: never in the config file

    def __post_init__(self) -> None:
        if self.key and self.key_file:
            raise ConfigError("[privacy] the key is both in NEXTWATCH_PRIVACY_KEY and in key_file: give one")

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, file_data: Mapping[str, Any] | None = None) -> PrivacyConfig:
        data = read_config_file(env=env) if file_data is None else file_data
        if dict(data.get("privacy", {})).get("key"):
            raise ConfigError("[privacy] key is set in the config file: give it as NEXTWATCH_PRIVACY_KEY or in "
                              "key_file (a secret), never in the file")
        return load_section(cls, "privacy", env, data)

    def member_ids(self) -> MemberIds | None:
        """The account -> member id mapping, or None when ids are not pseudonymized."""
        if not self.pseudonymous_ids:
            return None
        if not self.key and not self.key_file:
            raise ConfigError("[privacy] pseudonymous_ids needs the key: NEXTWATCH_PRIVACY_KEY or key_file (only "
                              "producers of account ids need it; readers of member ids do not)")
        if self.key:
            return MemberIds(self.key.encode())
        path = Path(self.key_file)
        if not path.is_file():
            raise ConfigError(f"[privacy] key_file {path} does not exist")
        return MemberIds(path.read_bytes().rstrip(b"\r\n"))
