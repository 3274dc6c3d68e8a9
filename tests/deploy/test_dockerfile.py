"""deploy/Dockerfile and /.dockerignore, checked without Docker, and the security defaults they
rely on."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from streams.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            out.append((keyword.upper(), args.strip()))
    return out


def only(keyword: str) -> str:
    (args,) = [a for k, a in instructions() if k == keyword]
    return args


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in instructions():
        if keyword == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", args))
    return env


def test_base_image_is_python_311_slim_pinned_to_a_patch_release() -> None:
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", only("FROM"))


def test_installs_the_pinned_runtime_dependencies_then_the_project_with_pip() -> None:
    runs = " ".join(a for k, a in instructions() if k == "RUN")
    pinned = "pip install --no-cache-dir --no-deps -r /tmp/shopguide-src/deploy/requirements-runtime.txt"
    project = "pip install --no-cache-dir --no-deps --no-build-isolation /tmp/shopguide-src"
    assert pinned in runs and project in runs and runs.index(pinned) < runs.index(project)
    assert only("COPY") == ". /tmp/shopguide-src"
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert "deploy" in ignored and "!deploy/requirements-runtime.txt" in ignored


def test_runs_as_an_unprivileged_numeric_user(k8s_objects: dict[tuple[str, str], Any]) -> None:
    user = only("USER")
    uid, _, gid = user.partition(":")
    assert int(uid) >= 1000 and int(gid) >= 1000
    sts = k8s_objects[("StatefulSet", "shopguide-worker")]
    assert sts["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)
    assert sts["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == int(gid)


def test_exposes_the_web_port_and_binds_all_interfaces_only_inside_the_image() -> None:
    settings = Settings.from_env(image_env())
    assert only("EXPOSE") == str(settings.web_port)
    assert settings.web_bind == "0.0.0.0"
    # Everywhere else the engine's default keeps the port on the loopback interface.
    assert Settings.from_env({}).web_bind == "127.0.0.1"


def test_healthcheck_asks_the_worker_whether_it_is_alive() -> None:
    check = only("HEALTHCHECK")
    assert "--start-period=" in check
    command = json.loads(check.split("CMD", 1)[1])
    assert "/livez" in command[-1]
    assert "SHOPGUIDE_WEB_PORT" in command[-1]


def test_default_command_is_a_worker() -> None:
    assert json.loads(only("ENTRYPOINT")) == ["shopguide"]
    assert json.loads(only("CMD")) == ["worker"]


def test_state_directory_is_owned_by_the_user() -> None:
    data_dir = image_env()["SHOPGUIDE_DATA_DIR"]
    runs = " ".join(a for k, a in instructions() if k == "RUN")
    assert f"install -d -o shopguide -g shopguide -m 0750 {data_dir}" in runs
    assert only("WORKDIR") == data_dir


def test_dockerignore_keeps_the_venv_state_git_and_secrets_out_of_the_context() -> None:
    patterns = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "var"} <= patterns
    assert {"**/.env", "**/*.pem", "**/*.key"} <= patterns
