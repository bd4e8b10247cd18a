"""``nextwatch eval`` over several processes: the models split between workers, each replaying the whole stream.

Every model learns only from the stream, so models can be evaluated apart and their tallies
merged: the report is the one a single process would give (a test checks it). Models that
share state (a job measured ``beside`` another) stay in one worker. Workers are forked, so
each replays its own copy of the stream and the models exactly as they were before the
fork: the stream must be an unstarted iterator over memory (a list, a generator over a
list), not over a socket or a file others read too.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Iterable, Mapping
from multiprocessing.connection import Connection, wait
from typing import Any

from jobs.evaluation import Progress, Report, evaluate
from jobs.models.base import Recommender

COSTS = {"Scorer": 8.0, "JobBlend": 6.0}  # relative cost per event, for spreading the work; any other model 1


def model_groups(models: Mapping[str, Recommender]) -> list[list[str]]:
    """The models' names in groups that must share a worker (a model with the one it is beside), in table order."""
    groups: dict[int, list[str]] = {}
    for name, model in models.items():
        holder = getattr(model, "beside", None) or model
        groups.setdefault(id(holder), []).append(name)
    return list(groups.values())


def assign(models: Mapping[str, Recommender], workers: int) -> list[list[str]]:
    """The groups spread over at most ``workers`` workers, the costliest first onto the least loaded."""
    cost = {name: COSTS.get(type(model).__name__, 1.0) for name, model in models.items()}
    groups = sorted(model_groups(models), key=lambda group: -sum(cost[name] for name in group))
    loads: list[tuple[float, list[str]]] = [(0.0, []) for _ in range(max(1, min(workers, len(groups))))]
    for group in groups:
        least = min(range(len(loads)), key=lambda n: loads[n][0])
        loads[least] = (loads[least][0] + sum(cost[name] for name in group), loads[least][1] + group)
    order = list(models)
    return [sorted(names, key=order.index) for _, names in loads if names]


def merge(parts: list[Report], order: list[str]) -> Report:
    """One report from the workers' (same stream, different models), rows in the models' ``order``."""
    first = parts[0]
    merged = Report(report_after_ms=first.report_after_ms, events=first.events,
                    reported_events=first.reported_events, seconds=max(part.seconds for part in parts))
    def views(scores: Mapping[str, Any]) -> list[str]:  # each model's rows, then its signals', as evaluated
        return [view for name in order for view in scores if view == name or view.startswith(f"{name}: ")]

    for view in views({v: None for part in parts for v in part.scores}):
        merged.scores[view] = next(part.scores[view] for part in parts if view in part.scores)
    for name in first.slices:
        merged.slices[name] = {view: next(p.slices[name][view] for p in parts if view in p.slices[name])
                               for view in views({v: None for p in parts for v in p.slices[name]})}
    for marks in zip(*(part.timeline for part in parts), strict=True):
        merged.timeline.append((marks[0][0], {name: tally for _, tallies in marks for name, tally in tallies.items()}))
    merged.blends = next((part.blends for part in parts if part.blends), {})
    return merged


def _work(stream: Iterable[Any], models: Mapping[str, Recommender], worker: int, results: Connection,
          options: dict[str, Any]) -> None:
    try:
        report = evaluate(stream, models, progress=lambda line: results.send(("progress", worker, line)),
                          **options)
        results.send(("report", worker, report))
    except BaseException:  # the parent says what failed, with the worker's traceback
        results.send(("error", worker, traceback.format_exc()))
    finally:
        results.close()


def evaluate_in_processes(stream: Iterable[Any], models: Mapping[str, Recommender], workers: int,
                          progress: Progress | None = None, **options: Any) -> Report:
    """:func:`jobs.evaluation.evaluate` with the models spread over ``workers`` forked processes.

    ``options`` are :func:`evaluate`'s; progress lines name the worker and its models.
    """
    plan = assign(models, workers)
    if len(plan) == 1 or not hasattr(os, "fork"):
        return evaluate(stream, models, progress=progress, **options)
    context = multiprocessing.get_context("fork")
    reports: dict[int, Report] = {}
    pipes, processes = [], []
    for worker, names in enumerate(plan):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_work, args=(stream, {name: models[name] for name in names}, worker, send,
                                                      options), daemon=True, name=f"eval-worker-{worker}")
        process.start()
        send.close()
        pipes.append(receive)
        processes.append(process)
    try:
        open_pipes = list(pipes)
        while open_pipes:
            for pipe in wait(open_pipes):
                assert isinstance(pipe, Connection)
                try:
                    kind, worker, payload = pipe.recv()
                except EOFError:
                    open_pipes.remove(pipe)
                    continue
                if kind == "progress" and progress:
                    progress(f"worker {worker + 1}/{len(plan)} ({len(plan[worker])} models): {payload}")
                elif kind == "report":
                    reports[worker] = payload
                elif kind == "error":
                    raise RuntimeError(f"evaluation worker {worker + 1} ({', '.join(plan[worker])}) failed:\n"
                                       f"{payload}")
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join()
    missing = [n + 1 for n in range(len(plan)) if n not in reports]
    if missing:
        codes = ", ".join(f"worker {n}: exit code {processes[n - 1].exitcode}" for n in missing)
        raise RuntimeError(f"evaluation workers ended without a report ({codes}); out of memory?")
    return merge([reports[n] for n in range(len(plan))], list(models))
