"""The README stays true: its configuration table is the settings' own, and CI runs its test command."""

import re
from pathlib import Path

from streams.settings import describe

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def quick_start() -> list[str]:
    section = README.split("## Quick start", 1)[1]
    block = section.split("```", 2)[1]
    return [line for line in block.splitlines()[1:] if line.strip() and not line.startswith("#")]


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_second():
    demo, tests = quick_start()
    assert "shopguide demo" in demo and "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_configuration_table_matches_the_settings():
    rows = re.findall(r"^\| `(SHOPGUIDE_\w+)` \| `([^`]*)` \| (.+?) \|$", README, re.M)
    assert rows == [(env, default, doc) for env, default, doc in describe()]
