"""The README stays true: CI runs its test command, and the configuration reference is the
settings' own."""

import re
from pathlib import Path

from streams.settings import configuration_table

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


def test_configuration_reference_matches_the_settings():
    reference = (ROOT / "docs" / "configuration.md").read_text()
    assert configuration_table() in reference, "regenerate with: shopguide config --markdown"


def test_every_variable_the_readme_names_exists():
    table = configuration_table()
    named = set(re.findall(r"`(SHOPGUIDE_\w+)`", README))
    assert named, "the README names no variable"
    assert not {n for n in named if f"`{n}`" not in table and not n.endswith("_FILE")}
