"""The Flink jobs: one subpackage each, with its operators, its SQL where it has some, its settings and a
``job.py`` that only wires named steps. The per-event logic they call lives in the pure packages beside
this one (``jobs.features``, ``jobs.models``, ``jobs.homepage``, ``jobs.exploration``); the plumbing they
share in :mod:`jobs.runtime`. No job subpackage imports another.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

# `nextwatch jobs run|submit NAME`; each module has JOB (a jobs.runtime.JobSpec) and runs it as __main__
JOB_MODULES = {"features": "jobs.flink.features.job", "learning": "jobs.flink.learning.job",
               "rows": "jobs.flink.rows.job", "metrics": "jobs.flink.metrics.job"}


def load_job(name: str) -> Any:
    """The JobSpec of the job called ``name`` (features, learning, rows, metrics)."""
    if name not in JOB_MODULES:
        raise KeyError(f"no job {name!r}; jobs: {', '.join(sorted(JOB_MODULES))}")
    return importlib.import_module(JOB_MODULES[name]).JOB


def job_file(name: str) -> Path:
    """The job's module as a file, for `flink run -py`."""
    return Path(__file__).resolve().parent / name / "job.py"
