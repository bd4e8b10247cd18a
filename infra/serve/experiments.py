"""The experiments each ``nextwatch serve`` worker follows: who is in which variant, and each report's page.

A member's variant is a pure function of their id and the experiment (:mod:`jobs.experiments.assignment`),
so the API lists a member's assignments from the experiments topic alone, with no lookup; the report's
page adds the metrics job's sums from Cassandra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.experiment_store import MetricRow
from connectors.follower import TopicFollower
from jobs.experiments.assignment import variant_of
from jobs.experiments.definition import Eligibility, Experiment, Exposure, hold
from jobs.experiments.report import build_report, html_report, sums_rows
from jobs.records.experiment import experiment_from_record, newest


class ExperimentsReplica(TopicFollower):
    """The newest version of every experiment, kept current from the experiments topic."""

    TOPIC, SUBJECT = "experiments", "experiment"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.experiments: dict[str, Experiment] = {}
        self.refused = 0

    def apply_record(self, record: dict[str, Any]) -> bool:
        return self.put(experiment_from_record(record))

    def put(self, experiment: Experiment) -> bool:
        if not newest(self.experiments, experiment):
            return False
        if hold(self.experiments, experiment):
            self.refused += 1  # over the limit
            return False
        return True


def _rules(eligibility: Eligibility) -> dict[str, list[str]]:
    return {"countries": sorted(eligibility.countries), "device_classes": sorted(eligibility.device_classes),
            "tenure": sorted(eligibility.tenure), "maturity": sorted(eligibility.maturity)}


def _admits_named(eligibility: Eligibility, exposure: Exposure) -> bool:
    """The rules admit every attribute ``exposure`` names (an attribute left None is not judged)."""
    return all(value is None or not allowed or value in allowed for allowed, value in (
        (eligibility.countries, exposure.country), (eligibility.device_classes, exposure.device_class),
        (eligibility.tenure, exposure.tenure), (eligibility.maturity, exposure.maturity)))


def assignments_body(member_id: str, experiments: Mapping[str, Experiment], now_ms: int,
                     exposure: Exposure) -> dict[str, Any]:
    """Every running experiment whose buckets hold the member, with their variant and its eligibility rules,
    less those whose rules refuse an attribute ``exposure`` names (the query's device, country, ...)."""
    out = []
    for experiment in sorted(experiments.values(), key=lambda e: e.name):
        if not experiment.running(now_ms) or not _admits_named(experiment.eligibility, exposure):
            continue
        variant = variant_of(experiment, member_id)
        if variant is None:
            continue
        out.append({"experiment": experiment.name, "layer": experiment.layer, "version": experiment.version,
                    "variant": variant.name, "control": variant.name == experiment.control.name,
                    "overrides": dict(variant.overrides), "eligibility": _rules(experiment.eligibility)})
    return {"member_id": member_id, "assignments": out}


def report_page(experiment: Experiment, rows: list[MetricRow]) -> bytes:
    """The report's HTML page from the stored rows."""
    return html_report(build_report(experiment, sums_rows(rows))).encode()
