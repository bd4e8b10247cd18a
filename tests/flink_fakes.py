"""Fakes of PyFlink's runtime for driving an operator in-process: runtime context, keyed and broadcast state,
timers, metrics, and Cassandra stores.

They behave as thread mode does: state values are pickled on ``update`` and unpickled on ``value`` (a
mutation after ``update`` is not kept), ``MapState.get`` answers ``None`` for a missing key, timers fire
in time order per key, a process function's ``(OutputTag, value)`` pairs are side outputs. What an
operator does through them is what it does on a cluster; ``tests/integration/test_savepoint_compat.py``
runs each job's scenario both ways and compares the rows.

>>> from jobs.runtime import DecodeEvents
>>> harness = OperatorHarness(DecodeEvents("test", dead_letters=True)).open()
>>> harness.process(b"not avro").side["dead-letter"][0][0]
b''
>>> harness.metrics["events_invalid"]
1
"""

from __future__ import annotations

import heapq
import pickle
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pyflink.datastream import OutputTag

MIN_WATERMARK = -(2**63)


class FakeMetricGroup:
    def __init__(self) -> None:
        self.gauges: dict[str, Callable[[], Any]] = {}

    def gauge(self, name: str, read: Callable[[], Any]) -> None:
        self.gauges[name] = read

    def values(self) -> dict[str, Any]:
        return {name: read() for name, read in self.gauges.items()}


class _Keyed:
    """Per-key storage of one state descriptor: values kept pickled, as the state backend keeps them."""

    def __init__(self, harness: OperatorHarness, name: str) -> None:
        self.harness, self.name = harness, name

    @property
    def _store(self) -> dict[Any, Any]:
        return self.harness.keyed_state.setdefault(self.name, {}).setdefault(self.harness.current_key, {})


class FakeValueState(_Keyed):
    def value(self) -> Any:
        raw = self._store.get("value")
        return None if raw is None else pickle.loads(raw)

    def update(self, value: Any) -> None:
        self._store["value"] = pickle.dumps(value)

    def clear(self) -> None:
        self._store.pop("value", None)


class _PickledMap:
    """What keyed map state and broadcast state share: a map of pickled values over ``self._store``."""

    _store: dict[Any, Any]

    def get(self, key: Any) -> Any:
        raw = self._store.get(key)
        return None if raw is None else pickle.loads(raw)

    def put(self, key: Any, value: Any) -> None:
        self._store[key] = pickle.dumps(value)

    def contains(self, key: Any) -> bool:
        return key in self._store

    def remove(self, key: Any) -> None:
        self._store.pop(key, None)

    def items(self) -> Iterator[tuple[Any, Any]]:
        for k, v in list(self._store.items()):  # decoded as they come, as PyFlink does
            yield k, pickle.loads(v)


class FakeMapState(_Keyed, _PickledMap):
    def keys(self) -> list[Any]:
        return list(self._store)

    def values(self) -> list[Any]:
        return [pickle.loads(v) for v in self._store.values()]

    def is_empty(self) -> bool:
        return not self._store

    def clear(self) -> None:
        self._store.clear()


class FakeBroadcastState(_PickledMap):
    """Broadcast (operator) state: one map per descriptor, shared by every key, values pickled.

    Only what PyFlink's broadcast state answers in thread mode: its ``keys()`` and ``values()`` call Java
    methods the state does not have, so they are left out here too.
    """

    def __init__(self, store: dict[Any, bytes]) -> None:
        self._store = store


class FakeRuntimeContext:
    def __init__(self, harness: OperatorHarness) -> None:
        self.harness = harness

    def get_state(self, descriptor: Any) -> FakeValueState:
        return FakeValueState(self.harness, descriptor.name)

    def get_map_state(self, descriptor: Any) -> FakeMapState:
        return FakeMapState(self.harness, descriptor.name)

    def get_metrics_group(self) -> FakeMetricGroup:
        return self.harness.metric_group

    def get_index_of_this_subtask(self) -> int:
        return 0

    def get_number_of_parallel_subtasks(self) -> int:
        return 1

    def get_job_parameter(self, key: str, default_value: str) -> str:
        return self.harness.job_parameters.get(key, default_value)


class FakeTimerService:
    def __init__(self, harness: OperatorHarness) -> None:
        self.harness = harness

    def current_processing_time(self) -> int:
        return self.harness.now_ms

    def current_watermark(self) -> int:
        return self.harness.watermark

    def register_processing_time_timer(self, timestamp: int) -> None:
        self.harness.register_timer(int(timestamp))

    def register_event_time_timer(self, timestamp: int) -> None:
        raise NotImplementedError("no operator here uses event-time timers")

    def delete_processing_time_timer(self, timestamp: int) -> None:
        self.harness.timers = [t for t in self.harness.timers if t != (timestamp, self.harness.current_key)]
        heapq.heapify(self.harness.timers)


class FakeContext:
    """The ``ctx`` of process_element, process_broadcast_element and on_timer."""

    def __init__(self, harness: OperatorHarness, timestamp: int | None = None) -> None:
        self.harness, self._timestamp = harness, timestamp

    def timestamp(self) -> int | None:
        return self._timestamp

    def timer_service(self) -> FakeTimerService:
        return FakeTimerService(self.harness)

    def get_current_key(self) -> Any:
        return self.harness.current_key

    def get_broadcast_state(self, descriptor: Any) -> FakeBroadcastState:
        return FakeBroadcastState(self.harness.broadcast_state.setdefault(descriptor.name, {}))


@dataclass
class Output:
    """What one call produced: main output, side outputs by tag id."""

    main: list[Any] = field(default_factory=list)
    side: dict[str, list[Any]] = field(default_factory=dict)

    def extend(self, other: Output) -> None:
        self.main += other.main
        for tag, values in other.side.items():
            self.side.setdefault(tag, []).extend(values)


class OperatorHarness:
    """One operator instance (parallelism 1) driven by hand: elements, broadcast elements, time.

    ``key`` selects the key of an element for keyed operators (None: not keyed). The clock starts at the
    wall clock (operators also read it themselves) and moves only when :meth:`advance` moves it.
    """

    def __init__(self, operator: Any, key: Callable[[Any], Any] | None = None) -> None:
        self.operator, self.key = operator, key
        self.keyed_state: dict[str, dict[Any, dict[Any, Any]]] = {}
        self.broadcast_state: dict[str, dict[Any, bytes]] = {}
        self.timers: list[tuple[int, Any]] = []
        self.metric_group = FakeMetricGroup()
        self.current_key: Any = None
        self.now_ms = int(time.time() * 1000)
        self.watermark = MIN_WATERMARK
        self.job_parameters: dict[str, str] = {}  # Flink's global job parameters, as the runtime sets them

    # -- lifecycle ---------------------------------------------------------------------------------------
    def open(self) -> OperatorHarness:
        self.operator.open(FakeRuntimeContext(self))
        return self

    def close(self) -> None:
        self.operator.close()

    def restart(self, operator: Any) -> OperatorHarness:
        """A new operator instance over this one's state and timers: what a restore from a checkpoint gives."""
        self.operator, self.metric_group = operator, FakeMetricGroup()
        return self.open()

    @property
    def metrics(self) -> dict[str, Any]:
        return self.metric_group.values()

    # -- input -------------------------------------------------------------------------------------------
    def process(self, value: Any, timestamp: int | None = None) -> Output:
        if self.key is not None:
            self.current_key = self.key(value)
        if hasattr(self.operator, "map"):
            return Output([self.operator.map(value)])
        if hasattr(self.operator, "flat_map"):
            return self._collect(self.operator.flat_map(value))
        return self._collect(self.operator.process_element(value, FakeContext(self, timestamp)))

    def process_all(self, values: Iterable[Any]) -> Output:
        out = Output()
        for value in values:
            out.extend(self.process(value))
        return out

    def process_broadcast(self, value: Any) -> Output:
        self.current_key = None
        return self._collect(self.operator.process_broadcast_element(value, FakeContext(self)))

    # -- time --------------------------------------------------------------------------------------------
    def register_timer(self, timestamp: int) -> None:
        entry = (timestamp, self.current_key)
        if entry not in self.timers:  # Flink keeps one timer per key and timestamp
            heapq.heappush(self.timers, entry)

    def advance(self, ms: int) -> Output:
        """Move processing time ``ms`` on (from at least the wall clock) and fire every timer now due."""
        self.now_ms = max(self.now_ms, int(time.time() * 1000)) + ms
        out = Output()
        while self.timers and self.timers[0][0] <= self.now_ms:
            timestamp, self.current_key = heapq.heappop(self.timers)
            produced = self.operator.on_timer(timestamp, FakeContext(self, timestamp))
            if produced is None:  # process mode runs `yield from on_timer(...)`: None fails the task there
                raise TypeError(f"{type(self.operator).__name__}.on_timer returned None, not an iterable")
            out.extend(self._collect(produced))
        return out

    def pending_timers(self) -> list[tuple[int, Any]]:
        return sorted(self.timers)

    def keys_with_state(self) -> set[Any]:
        """The keys any keyed state holds a value for."""
        return {key for per_key in self.keyed_state.values() for key, values in per_key.items() if values}

    @staticmethod
    def _collect(produced: Any) -> Output:
        out = Output()
        for item in produced or ():
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], OutputTag):
                out.side.setdefault(item[0].tag_id, []).append(item[1])
            else:
                out.main.append(item)
        return out


# -- Cassandra ---------------------------------------------------------------------------------------


class FakeStore:
    """Stands for any store: records every call, answers reads from ``answers`` (name -> function)."""

    def __init__(self, store_type: type[Any], log: list[tuple[str, str, tuple[Any, ...]]],
                 answers: dict[str, Callable[..., Any]]) -> None:
        self.store_type, self.log, self.answers = store_type, log, answers
        self.session, self.keyspace = None, "fake"

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.log.append((self.store_type.__name__, name, args))
            answer = self.answers.get(name)
            if answer is not None:
                return answer(*args)
            return [] if name == "rows" else None

        return call


@dataclass
class FakeStores:
    """What operators take as ``stores``: hands out :class:`FakeStore` and keeps one log of every call.

    ``answers``: reads by method name, e.g. ``{"rows": lambda statement, *params: [...]}``.
    """

    answers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    log: list[tuple[str, str, tuple[Any, ...]]] = field(default_factory=list)
    closed: int = 0

    def open(self, *store_types: type[Any]) -> list[Any]:
        return [FakeStore(store_type, self.log, self.answers) for store_type in store_types]

    def close(self, *stores: Any) -> None:
        self.closed += 1

    def calls(self, method: str) -> list[tuple[Any, ...]]:
        return [args for _store, name, args in self.log if name == method]
