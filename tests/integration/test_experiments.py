"""Experiments on the real broker: created, listed and stopped through the compacted experiments topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.errors import NextwatchError
from infra import experiments
from jobs.experiments.assignment import assign
from jobs.experiments.definition import Exposure

DEFINITION = """
name = "{name}"
layer = "ranking"
traffic = {traffic}

[[variants]]
name = "control"

[[variants]]
name = "diverse"
overrides = {{ "rows.diversity" = 0.5 }}
"""


def write(tmp_path: Path, name: str, traffic: float) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(DEFINITION.format(name=name, traffic=traffic))
    return path


def test_create_list_stop(isolated_kafka: Any, tmp_path: Path) -> None:
    first = experiments.create(write(tmp_path, "diversity-a", 0.6), isolated_kafka)
    with pytest.raises(NextwatchError, match="no free range of 5,000 buckets"):
        experiments.create(write(tmp_path, "diversity-b", 0.5), isolated_kafka)
    second = experiments.create(write(tmp_path, "diversity-c", 0.4), isolated_kafka)
    held = experiments.current(isolated_kafka)
    assert {name: (e.version, e.bucket_start, e.bucket_count) for name, e in held.items()} == {
        "diversity-a": (1, 0, 6000), "diversity-c": (1, 6000, 4000)}
    assert held["diversity-a"] == first and held["diversity-c"] == second
    # every member of the layer is in exactly one of the two, the same one on every read
    members = [f"m{i}" for i in range(2000)]
    seen = {m: [a.label for a in assign(held.values(), m, Exposure(), second.updated_ms)] for m in members}
    assert all(len(labels) == 1 for labels in seen.values())

    stopped = experiments.stop("diversity-a", isolated_kafka)
    assert (stopped.version, stopped.salt, stopped.bucket_start) == (2, first.salt, 0)
    after = experiments.current(isolated_kafka)
    assert after["diversity-a"].version == 2 and after["diversity-a"].stop_ms == stopped.stop_ms
    assert not assign([after["diversity-a"]], "m1", Exposure(), stopped.stop_ms or 0)
    with pytest.raises(NextwatchError, match="stopped already"):
        experiments.stop("diversity-a", isolated_kafka)
    with pytest.raises(NextwatchError, match="no experiment 'nope'; there are: diversity-a, diversity-c"):
        experiments.stop("nope", isolated_kafka)
    # the stopped experiment's buckets are free for the next one; its name is not
    third = experiments.create(write(tmp_path, "diversity-b", 0.5), isolated_kafka)
    assert (third.bucket_start, third.bucket_count) == (0, 5000)
