"""``nextwatch serve``: the ASGI app on uvicorn, one process per worker.

uvicorn with httptools and uvloop: an HTTP/1.1 server in C under an event loop in C,
the fastest of the ASGI servers on PyPI for small JSON answers, and its worker
processes share the port (two cores -> two workers, each with its own cache).
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from subprocess import Popen, TimeoutExpired

from connectors.availability import CatalogReplica
from connectors.config import REPO_ROOT, CassandraConfig, KafkaConfig
from connectors.privacy import PrivacyConfig
from connectors.serving import CassandraServingReads
from infra.serve.app import ServeApp
from infra.serve.config import ServeConfig
from infra.serve.erasures import ErasedMembersReplica
from infra.serve.experiments import ExperimentsReplica
from infra.serve.metrics import ServeMetrics

LOG = logging.getLogger("nextwatch.serve")


def create_app() -> ServeApp:
    """One worker's app (uvicorn calls this in each worker process)."""
    config = ServeConfig.load()
    kafka, cassandra = KafkaConfig.load(), CassandraConfig.load()
    reads = CassandraServingReads(cassandra, read_timeout_s=config.read_timeout_s, retry_after_s=config.retry_after_s)
    catalog = CatalogReplica(kafka)
    experiments = ExperimentsReplica(kafka)
    erasures = ErasedMembersReplica(kafka)
    actions = None
    if config.demo_actions:
        from infra.serve.actions import DemoActions

        actions = DemoActions(kafka, catalog)

    def follow_catalog() -> None:
        while True:
            try:
                catalog.start(idle_s=config.catalog_idle_s)
                return
            except Exception as exc:  # the broker may come later; /healthz says so meanwhile
                LOG.warning("catalog topic not readable yet (%s); retrying", str(exc)[:200])
                threading.Event().wait(2.0)

    def follow_experiments() -> None:
        try:
            experiments.start(idle_s=config.catalog_idle_s)
        except Exception as exc:  # a broker without the topic yet: no experiments are served, the rest is
            LOG.warning("experiments topic not readable (%s): no member is in an experiment here", str(exc)[:200])

    def follow_erasures() -> None:
        try:
            erasures.start(idle_s=config.catalog_idle_s)
        except Exception as exc:  # the members' rows are deleted by the command and the jobs in any case
            LOG.warning("erasures topic not readable (%s): cached answers of members erased now live out their "
                        "cache_ttl_ms", str(exc)[:200])

    def startup() -> None:
        reads.start()
        follow_catalog()
        follow_experiments()
        follow_erasures()
        reads.wait_open(timeout_s=10.0)

    def shutdown() -> None:
        experiments.close()
        erasures.close()
        catalog.close()
        reads.close()
        if actions is not None:
            actions.close()

    return ServeApp(config, reads, catalog, ServeMetrics(), actions,
                    catalog_ok=lambda: catalog.loaded and catalog.following, on_startup=startup, on_shutdown=shutdown,
                    experiments=experiments.experiments,
                    member_ids_only=PrivacyConfig.load().pseudonymous_ids, erased=erasures.digests)


def serve(config: ServeConfig | None = None, say: Callable[[str], None] | None = None) -> int:
    """Run the service until Ctrl-C (or SIGTERM)."""
    import uvicorn

    from infra.process import state_dir

    config = config or ServeConfig.load()
    metrics_dir = state_dir() / "run" / f"serve-metrics-{config.port}"
    shutil.rmtree(metrics_dir, ignore_errors=True)  # counters start at zero with each service
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    (say or (lambda text: print(text, file=sys.stderr, flush=True)))(
        f"[serve] http://{config.host}:{config.port}/ ({config.workers} workers, cache {config.cache_ttl_ms} ms, "
        f"demo actions {'on' if config.demo_actions else 'off'}); Ctrl-C stops it")
    uvicorn.run("infra.serve.server:create_app", factory=True, host=config.host, port=config.port,
                workers=config.workers, loop="uvloop", http="httptools", access_log=False,
                log_level=config.log_level, timeout_graceful_shutdown=5)
    return 0


@contextmanager
def serve_process(environment: Mapping[str, str], timeout_s: float = 60.0) -> Iterator[tuple[int, Popen[bytes]]]:
    """``nextwatch serve`` as a process of its own on a free port, with ``environment`` (its settings as
    ``NEXTWATCH_*`` variables); yields (port, process) once ``/healthz`` answers 200, and stops it after."""
    from infra.process import free_port

    port = free_port()
    process = Popen([sys.executable, "-m", "infra.cli", "serve"], env={**environment,
                    "NEXTWATCH_SERVE_PORT": str(port)}, cwd=REPO_ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while not _healthy(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nextwatch serve did not become healthy (exit code {process.poll()})")
            time.sleep(0.2)
        yield port, process
    finally:
        if process.poll() is None:  # one that failed to start has exited already
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()
