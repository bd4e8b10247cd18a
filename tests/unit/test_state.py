"""Every state class reads every version of itself ever written (``tests/fixtures/state/``), through one codec."""

from __future__ import annotations

import importlib
import json
import pickle
from typing import Any

import numpy as np
import pytest

from connectors.config import REPO_ROOT
from connectors.state import StateDecodeError, Versioned

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "state"
INDEX: dict[str, dict[str, Any]] = json.loads((FIXTURES / "index.json").read_text())
# every module that defines a class kept in Flink state
STATE_MODULES = ("connectors.events", "jobs.features.user_state", "jobs.models.online", "jobs.models.content",
                 "jobs.homepage.state", "jobs.exploration.rewards", "jobs.exploration.presentation",
                 "jobs.exploration.policies", "jobs.experiments.metrics", "jobs.experiments.definition")


def _class(path: str) -> type[Any]:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    """As JSON would hold it: tuples as lists, arrays as lists of floats."""
    if isinstance(value, np.ndarray):
        return [float(v) for v in value]
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.floating | np.integer):
        return value.item()
    return value


def _resolve(obj: Any, path: str) -> Any:
    """``a.b``, ``a.0`` (list index), ``a.12345`` (int dict key), ``a()`` and ``a(7)`` (a method call)."""
    for part in path.split("."):
        if part.endswith(")"):
            name, arg = part[:-1].split("(")
            obj = getattr(obj, name)(*([int(arg)] if arg else []))
        elif isinstance(obj, dict):
            obj = obj[part] if part in obj else obj[int(part)]
        elif isinstance(obj, list | tuple):
            obj = obj[int(part)]
        else:
            obj = getattr(obj, part)
    return _plain(obj)


def _check(obj: Any, expect: dict[str, Any]) -> None:
    for path, value in expect.items():
        assert _resolve(obj, path) == value, path


@pytest.mark.parametrize("fixture", sorted(INDEX))
def test_every_version_ever_written_loads(fixture: str) -> None:
    entry = INDEX[fixture]
    cls = _class(entry["class"])
    obj = pickle.loads((FIXTURES / fixture).read_bytes())
    assert type(obj) is cls
    _check(obj, entry["expect"])
    # written again by this code: its own version, read back the same
    assert obj.__getstate__()[0] == cls.STATE_VERSION
    _check(pickle.loads(pickle.dumps(obj)), entry["expect"])


def _state_classes() -> list[type[Any]]:
    classes = {cls for name in STATE_MODULES for cls in vars(importlib.import_module(name)).values()
               if isinstance(cls, type) and issubclass(cls, Versioned) and cls is not Versioned}
    return sorted(classes, key=lambda cls: cls.__qualname__)


@pytest.mark.parametrize("cls", _state_classes(), ids=lambda cls: cls.__qualname__)
def test_every_migration_and_the_current_version_have_a_fixture(cls: type[Any]) -> None:
    path = f"{cls.__module__}.{cls.__qualname__}"
    versions = {entry["version"] for entry in INDEX.values() if entry["class"] == path}
    assert cls.STATE_VERSION in versions, f"{path}: no fixture of version {cls.STATE_VERSION}"
    assert set(cls.MIGRATIONS) <= versions, f"{path}: migrations {set(cls.MIGRATIONS) - versions} never exercised"


def test_state_from_newer_code_is_refused_by_name() -> None:
    from jobs.models.online import UserModel

    newer = (UserModel.STATE_VERSION + 1, *UserModel().state_fields(), "a field from the future")
    with pytest.raises(StateDecodeError, match=rf"UserModel, version {UserModel.STATE_VERSION + 1}: written by newer"):
        UserModel.__new__(UserModel).__setstate__(newer)


def test_a_shape_no_migration_reads_is_refused_by_name() -> None:
    from jobs.features.user_state import UserState

    with pytest.raises(StateDecodeError, match=rf"UserState, version {UserState.STATE_VERSION}: cannot restore"):
        UserState.__new__(UserState).__setstate__((UserState.STATE_VERSION, "not", "the", "fields"))
    with pytest.raises(StateDecodeError, match=r"UserState, version 0: no migration"):
        UserState.__new__(UserState).__setstate__({"profile": None})


class _CountingState:
    """A Flink value state of one key that counts the calls the cache should save."""

    def __init__(self) -> None:
        self.stored: bytes | None = None
        self.reads = 0

    def value(self) -> Any:
        self.reads += 1
        return None if self.stored is None else pickle.loads(self.stored)

    def update(self, value: Any) -> None:
        self.stored = pickle.dumps(value)


def _keyed_state(cache_keys: int) -> tuple[Any, dict[str, _CountingState]]:
    from types import SimpleNamespace

    from jobs.runtime import EventCount, KeyedState
    from tests.flink_fakes import FakeMetricGroup

    states: dict[str, _CountingState] = {}
    current = {"key": "u1"}

    class ByKey:  # what Flink hands the operator: one state object, scoped to the current key
        def value(self) -> Any:
            return states.setdefault(current["key"], _CountingState()).value()

        def update(self, value: Any) -> None:
            states.setdefault(current["key"], _CountingState()).update(value)

    context = SimpleNamespace(get_state=lambda descriptor: ByKey())
    keyed = KeyedState(context, "user", EventCount(FakeMetricGroup(), "failures"), cache_keys=cache_keys)
    keyed.select = lambda key: current.update(key=key)  # type: ignore[attr-defined]
    return keyed, states


def test_a_cached_key_is_read_without_flink_and_its_writes_still_reach_flink() -> None:
    keyed, states = _keyed_state(cache_keys=2)
    keyed.update({"plays": 1}, "u1")
    value = keyed.value("u1")
    assert value == {"plays": 1} and states["u1"].reads == 0  # the object itself, no call into Flink
    value["plays"] = 2
    keyed.update(value, "u1")
    assert pickle.loads(states["u1"].stored or b"") == {"plays": 2}  # written through


def test_a_value_changed_but_not_written_back_is_read_from_flink_again() -> None:
    keyed, states = _keyed_state(cache_keys=2)
    keyed.update({"plays": 1}, "u1")
    keyed.value("u1")["plays"] = 99  # e.g. an operator that returns early on a duplicate
    assert keyed.value("u1") == {"plays": 1} and states["u1"].reads == 1


def test_the_cache_keeps_the_most_recently_written_keys_only() -> None:
    keyed, states = _keyed_state(cache_keys=2)
    for user in ("u1", "u2", "u3"):
        keyed.select(user)
        keyed.update({"user": user}, user)
    keyed.select("u1")
    assert keyed.value("u1") == {"user": "u1"} and states["u1"].reads == 1  # evicted: read from Flink
    keyed.select("u3")
    assert keyed.value("u3") == {"user": "u3"} and states["u3"].reads == 0
    uncached, plain = _keyed_state(cache_keys=0)
    uncached.update({"user": "u1"}, "u1")
    assert uncached.value("u1") == {"user": "u1"} and plain["u1"].reads == 1  # no cache unless asked
