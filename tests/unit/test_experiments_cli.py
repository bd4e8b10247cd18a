"""``nextwatch experiments``: definitions read from files and checked with the components' own configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from connectors.errors import NextwatchError
from infra.experiments import check_overrides, component_configs, describe, load_definition
from jobs.experiments.definition import OVERRIDABLE, Draft, Eligibility, Variant, allocate

GOOD = """
name = "diversity-mobile"
layer = "ranking"
traffic = 0.5
description = "diversity 0.5 against 0.3 for new members on phones"

[eligibility]
device_classes = ["MOBILE"]
tenure = ["new"]

[[variants]]
name = "control"

[[variants]]
name = "diverse"
overrides = { "rows.diversity" = 0.5 }
"""


def draft(**settings: str) -> Draft:
    return Draft("d", "ranking", "d", 1.0, (Variant("control"), Variant("b", 1.0, settings)), Eligibility(), 0, None,
                 "")


def test_every_overridable_setting_is_a_field_of_its_component_config() -> None:
    configs = component_configs()
    assert set(configs) == set(OVERRIDABLE)
    for component, names in OVERRIDABLE.items():
        fields = {f.name for f in dataclasses.fields(configs[component])}
        assert set(names) <= fields, (component, set(names) - fields)


def test_a_good_file_loads_and_describes_itself(tmp_path: Path) -> None:
    path = tmp_path / "diversity.toml"
    path.write_text(GOOD)
    loaded = load_definition(path, now_ms=1_700_000_000_000)
    check_overrides(loaded, file_data={})
    text = describe(allocate(loaded, [], now_ms=1_700_000_000_000), now_ms=1_700_000_000_001)
    assert "diversity-mobile  v1  running  layer=ranking  traffic=50.00% (buckets 0-4999)" in text
    assert "eligible: device=MOBILE tenure=new" in text
    assert "control (control): 50% of members, defaults" in text
    assert "diverse: 50% of members, rows.diversity=0.5" in text


@pytest.mark.parametrize(("settings", "named"), [
    ({"rows.diversity": "1.5"}, "variant 'b': [rows] diversity and popularity_penalty must be in [0, 1]"),
    ({"rows.explore_after": "first"}, "variant 'b': [rows] explore_after:"),
    ({"rows.explore_after": "0"}, "variant 'b': [rows] explore_after must be >= 1"),
    ({"learning.blend": "cf=1,telepathy=2"}, "variant 'b': [learning] blend:"),
    ({"rows.row_order": "random"}, "variant 'b': [rows] row_order must be one of learned, fixed"),
])
def test_bad_override_values_are_refused_by_the_component_config(settings: dict[str, str], named: str) -> None:
    with pytest.raises(NextwatchError) as refused:
        check_overrides(draft(**settings), file_data={})
    assert str(refused.value).startswith(named)


def test_override_is_checked_on_top_of_the_deployed_file() -> None:
    """The deployed file's other settings still apply: a variant's value must work with them."""
    check_overrides(draft(**{"rows.explore_after": "3"}), file_data={"rows": {"items_per_row": 10}})
    with pytest.raises(NextwatchError, match=r"\[rows\] max_flush_ms must be >= flush_ms"):
        check_overrides(draft(**{"rows.diversity": "0.5"}), file_data={"rows": {"flush_ms": 5000}})


@pytest.mark.parametrize(("content", "named"), [
    ("name = ", "not valid TOML"),
    ("name = 'x'\nlayer = 'l'\nvariants = []", "variants: 2 to 8"),
    ("x" * 70_000, "over 64 KiB"),
])
def test_bad_files_are_refused_naming_the_file(tmp_path: Path, content: str, named: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(NextwatchError, match=named) as refused:
        load_definition(path, now_ms=0)
    assert str(path) in str(refused.value)
    with pytest.raises(NextwatchError, match="No such file"):
        load_definition(tmp_path / "missing.toml", now_ms=0)


def test_a_variant_may_serve_the_fixed_row_order_over_the_shared_models() -> None:
    from jobs.exploration.policies import FixedRowOrder
    from jobs.flink.rows.config import RowsJobConfig, new_policies, served_policies, variant_settings

    check_overrides(draft(**{"rows.row_order": "fixed"}), file_data={})
    base = RowsJobConfig()
    shared = new_policies(base)
    fixed = served_policies(shared, variant_settings(base, {"row_order": "fixed"}))
    assert isinstance(fixed.order, FixedRowOrder) and fixed.order.models is shared.order.models
    assert fixed.order.version == "rows-fixed-1" and fixed.order.epsilon == 0.0
    assert type(served_policies(shared, base).order) is type(shared.order)  # the learned one, as configured
    assert isinstance(new_policies(RowsJobConfig(row_order="fixed")).order, FixedRowOrder)
