"""What an install pulls in: the default install brings no GPU toolkit."""

from __future__ import annotations

import importlib.metadata
import tomllib

from connectors.config import REPO_ROOT


def test_the_default_install_pulls_no_gpu_toolkit() -> None:
    # the neural sequence model is numpy only; a GPU framework would pull gigabytes of nvidia-* wheels
    installed = {(dist.metadata["Name"] or "").lower() for dist in importlib.metadata.distributions()}
    assert not sorted(name for name in installed if name.startswith("nvidia-"))
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = " ".join(project["dependencies"]).lower()
    assert not any(framework in declared for framework in ("torch", "tensorflow", "jax"))
