"""The local stack's services come back on the ports they had, so running jobs and clients find them again."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from infra.process import stable_ports


def test_a_restarted_service_gets_its_ports_back_unless_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXTWATCH_HOME", str(tmp_path))
    first = stable_ports("cassandra", ["native", "storage"])
    assert len(set(first.values())) == 2
    assert stable_ports("cassandra", ["native", "storage"]) == first
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", first["native"]))
        squatter.listen()
        moved = stable_ports("cassandra", ["native", "storage"])
    assert moved["native"] != first["native"] and moved["storage"] == first["storage"]
    # a service the file does not know yet starts where the config file says it is, when that port is free
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        configured = probe.getsockname()[1]
    assert stable_ports("kafka", ["kafka"], {"kafka": configured}) == {"kafka": configured}
    assert stable_ports("tansu", ["kafka"], {"kafka": 0})["kafka"] > 0


def test_the_children_of_a_process_are_found() -> None:
    import os
    import subprocess
    import sys

    from infra.process import child_pids

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert child.pid in child_pids(os.getpid())
    finally:
        child.kill()
        child.wait()
