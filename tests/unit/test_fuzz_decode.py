"""Fuzzing the way in: no bytes a broker accepts crash the decoder or the decode step, whatever they are.

Property-based (Hypothesis), with a fixed seed so that CI runs the same inputs every time: arbitrary
bytes, and valid messages of every event type with bytes flipped, cut, repeated or appended. Each input
is either a typed event or a rejection with a known reason code, and its dead-letter record is within
its bound.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from connectors.codec import EventCodec
from connectors.limits import Limits
from jobs.decoding import DECODE_REJECTIONS, decode_message
from jobs.runtime import DecodeEvents
from tests import factories
from tests.flink_fakes import OperatorHarness

CODEC = EventCodec()
LIMITS = Limits(message_bytes=4096, dead_letter_bytes=16 * 1024)
VALID = [CODEC.encode(make()) for make in factories.ALL_FACTORIES.values()]
SEED = 20261130
HARNESS = OperatorHarness(DecodeEvents("fuzz", dead_letters=True, limits=LIMITS)).open()  # one for every input
FUZZ = settings(max_examples=5_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@st.composite
def mangled(draw: Any) -> bytes:
    """A valid message, then one of: bytes flipped, cut short, a slice repeated, junk appended."""
    data = bytearray(draw(st.sampled_from(VALID)))
    how = draw(st.sampled_from(["flip", "cut", "repeat", "append"]))
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] = draw(st.integers(0, 255))
    elif how == "cut":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif how == "repeat":
        start = draw(st.integers(0, len(data) - 1))
        data[start:start] = data[start:start + draw(st.integers(1, 64))] * draw(st.integers(1, 200))
    else:
        data += draw(st.binary(min_size=1, max_size=5000))
    return bytes(data)


def _check(value: bytes) -> None:
    event, rejection = decode_message(CODEC, value, factories.now_ms(), LIMITS)
    assert (event is None) != (rejection is None)
    if rejection is not None:
        assert rejection.code in DECODE_REJECTIONS and 0 < len(rejection.reason) <= 1_100
    out = HARNESS.process(value)
    for _, row in out.side.get("dead-letter", []):
        assert len(row) <= LIMITS.dead_letter_bytes


@seed(SEED)
@FUZZ
@given(value=st.binary(max_size=10_000))
def test_no_bytes_crash_the_decoder(value: bytes) -> None:
    _check(value)


@seed(SEED)
@FUZZ
@given(value=mangled())
def test_no_mangled_message_crashes_the_decoder(value: bytes) -> None:
    _check(value)
