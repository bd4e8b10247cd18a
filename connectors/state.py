"""Versioned state: how an object kept in Flink state is written, and read back from every version ever written.

Flink keeps the jobs' keyed and broadcast state as pickles (thread mode: plain ``pickle``). Every class
whose objects live there derives from :class:`Versioned` and declares:

* ``STATE_VERSION``: the version it writes;
* :meth:`Versioned.state_fields`: what it writes, in order (by default its dataclass fields);
* :meth:`Versioned.restore`: how it takes them back (by default the dataclass fields, in order);
* ``MIGRATIONS``: for each older version n, a function from version n's fields to version n + 1's.

An object is written as ``(version, *fields)``. Version 0 is a class's shape from before it wrote a
version: what default pickling gave (its field dict, or a list of slot values), handed to
``MIGRATIONS[0]`` as a one-element tuple (:func:`fields_from_dict` turns a field dict into a layout).
A change of shape is a new version with a migration, and a fixture of the old shape in
``tests/fixtures/state/``. Objects of other classes inside a state value are part of its shape unless
they are Versioned themselves.

State that no migration reaches (written by newer code, or a migration that fails) raises
:class:`StateDecodeError` naming the class and the version. Jobs count it (``state_decode_failures``)
and leave that state as it is: it is never taken for empty.

>>> from dataclasses import dataclass
>>> @dataclass
... class Counter(Versioned):
...     STATE_VERSION = 2
...     MIGRATIONS = {1: lambda fields: (*fields, "")}  # version 2 added a label
...     count: int = 0
...     label: str = ""
>>> Counter(3, "x").__getstate__()  # what pickle writes
(2, 3, 'x')
>>> old = Counter.__new__(Counter)
>>> old.__setstate__((1, 7))  # as version 1 wrote it
>>> old
Counter(count=7, label='')
>>> old.__setstate__((3, 7, "x", True))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
connectors.state.StateDecodeError: state of ...Counter, version 3: written by newer code (this code reads ... to 2)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

Fields = tuple[Any, ...]
Migration = Callable[[Fields], Fields]

# what reading a pickle of state can raise besides StateDecodeError: a class gone from its module, a
# truncated or foreign payload, a shape the code does not expect
DECODE_ERRORS: tuple[type[Exception], ...] = (AttributeError, EOFError, ImportError, IndexError, KeyError,
                                              TypeError, ValueError)


class StateDecodeError(ValueError):
    """State a class cannot read: no migration reaches it, or restoring it failed."""

    def __init__(self, cls: type[Any], version: object, reason: str) -> None:
        super().__init__(f"state of {cls.__module__}.{cls.__qualname__}, version {version}: {reason}")
        self.cls, self.version = cls, version


_NAMES: dict[type[Any], tuple[str, ...]] = {}


def field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def field_defaults(cls: type[Any]) -> dict[str, Callable[[], Any]]:
    """Each dataclass field's default, as a factory."""
    def constant(value: Any) -> Callable[[], Any]:
        return lambda: value

    defaults: dict[str, Callable[[], Any]] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = constant(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = f.default_factory
    return defaults


def fields_from_dict(names: Sequence[str], defaults: Mapping[str, Callable[[], Any]]) -> Migration:
    """A version-0 migration: a default-pickled field dict -> the fields ``names`` in order.

    A field the dict lacks (added before versions were written) takes its default; one without a
    default is an error.
    """
    def migrate(fields: Fields) -> Fields:
        (state,) = fields
        if isinstance(state, tuple) and len(state) == 2:  # default pickling of slots: (dict or None, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise TypeError(f"expected a field dict, got {type(state).__name__}")
        missing = [name for name in names if name not in state and name not in defaults]
        if missing:
            raise KeyError(f"fields {missing} are missing and have no default")
        return tuple(state[name] if name in state else defaults[name]() for name in names)

    return migrate


def upgrade(cls: type[Any], state: Any) -> Fields:
    """The fields of ``cls``'s current version from any version it ever wrote."""
    version, fields = _split(cls, state)
    current = cls.STATE_VERSION
    if version > current:
        raise StateDecodeError(cls, version, f"written by newer code (this code reads versions up to {current})")
    while version < current:
        migrate = cls.MIGRATIONS.get(version)
        if migrate is None:
            raise StateDecodeError(cls, version, "no migration from this version")
        try:
            fields = migrate(fields)
        except Exception as exc:
            raise StateDecodeError(cls, version, f"migration failed: {exc!r}") from exc
        version += 1
    return fields


def _split(cls: type[Any], state: Any) -> tuple[int, Fields]:
    if isinstance(state, tuple) and state and type(state[0]) is int:
        return state[0], state[1:]
    if isinstance(state, dict | list) or (isinstance(state, tuple) and len(state) == 2):
        return 0, (state,)  # default pickling: before the class wrote a version
    raise StateDecodeError(cls, "?", f"not a state this codec wrote: {type(state).__name__}")


class Versioned:
    """Base of every class kept in Flink state: pickled as ``(STATE_VERSION, *state_fields())``.

    A ``@dataclass(frozen=True, slots=True)`` defines its own ``__getstate__`` and ``__setstate__``: such
    a class takes these back in its body (``__getstate__ = Versioned.__getstate__``, the same for set).
    """

    __slots__ = ()
    STATE_VERSION: ClassVar[int] = 1
    MIGRATIONS: ClassVar[Mapping[int, Migration]] = {}

    def state_fields(self) -> Fields:
        """What is written, in order: by default the dataclass fields."""
        return tuple(getattr(self, name) for name in field_names(type(self)))

    def restore(self, fields: Fields) -> None:
        """Take back what :meth:`state_fields` wrote (this version's layout): by default the dataclass fields."""
        names = field_names(type(self))
        if len(fields) != len(names):
            raise ValueError(f"{len(fields)} fields for the {len(names)} of {names}")
        for name, value in zip(names, fields, strict=True):
            object.__setattr__(self, name, value)  # frozen dataclasses too

    def __getstate__(self) -> Fields:
        return (self.STATE_VERSION, *self.state_fields())

    def __setstate__(self, state: Any) -> None:
        cls = type(self)
        fields = upgrade(cls, state)
        try:
            self.restore(fields)
        except StateDecodeError:
            raise
        except Exception as exc:
            raise StateDecodeError(cls, cls.STATE_VERSION, f"cannot restore: {exc!r}") from exc
