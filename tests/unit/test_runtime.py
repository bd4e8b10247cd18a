"""The runtime's settings: the execution mode, its Flink options, and restores refused in the other mode."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from connectors.errors import ConfigError
from jobs.runtime import EXECUTION_MODE_FILE, FlinkConfig, check_restore_mode, flink_settings, record_execution_mode


def test_process_mode_is_the_default_with_large_bundles_and_a_state_cache_that_options_override() -> None:
    config = FlinkConfig.load(env={}, file_data={})
    settings = flink_settings(config)
    assert config.execution_mode == "process" and settings["python.execution-mode"] == "process"
    assert int(settings["python.fn-execution.bundle.size"]) >= 10_000
    assert int(settings["python.fn-execution.bundle.time"]) <= 100  # a quiet stream is not held back longer
    assert int(settings["python.state.cache-size"]) > 1_000  # Flink's default: a round trip per read past it

    tuned = FlinkConfig.load(env={"NEXTWATCH_FLINK_OPT_python__state__cache-size": "500"}, file_data={})
    assert flink_settings(tuned)["python.state.cache-size"] == "500"
    thread = flink_settings(FlinkConfig.load(env={"NEXTWATCH_FLINK_EXECUTION_MODE": "thread"}, file_data={}))
    assert thread["python.execution-mode"] == "thread" and "python.state.cache-size" not in thread


def test_a_restore_in_the_other_execution_mode_is_refused_naming_both(tmp_path: Path) -> None:
    savepoint = tmp_path / "savepoint-1"
    record_execution_mode(savepoint, "thread")
    with pytest.raises(ConfigError, match="written in thread mode and \\[flink\\] execution_mode is process"):
        check_restore_mode(str(savepoint), "process")
    with pytest.raises(ConfigError, match='execution_mode = "thread"'):
        check_restore_mode(savepoint.as_uri(), "process")  # as Flink names it
    check_restore_mode(str(savepoint), "thread")

    job = tmp_path / "checkpoints" / "0123abcd"  # a retained checkpoint: the record is its job's
    record_execution_mode(job, "process")
    (job / "chk-7").mkdir()
    check_restore_mode(str(job / "chk-7"), "process")
    with pytest.raises(ConfigError):
        check_restore_mode(str(job / "chk-7"), "thread")
    assert (job / EXECUTION_MODE_FILE).read_text().strip() == "process"


def test_state_without_a_record_is_restored_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nextwatch.jobs"):
        check_restore_mode(str(tmp_path / "old-savepoint"), "process")
    assert "no record of its execution mode" in caplog.text


def test_the_savepoint_fixtures_record_the_mode_they_were_made_in() -> None:
    fixtures = Path(__file__).parents[1] / "fixtures" / "savepoints"
    for job in ("features", "learning", "rows"):
        check_restore_mode(str(fixtures / job / "savepoint"), "thread")
        with pytest.raises(ConfigError):
            check_restore_mode(str(fixtures / job / "savepoint"), "process")
