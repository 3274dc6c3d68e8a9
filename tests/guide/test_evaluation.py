import argparse
from pathlib import Path

import pytest

from guide.evaluation import register

EPQA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "product_qa" / "epqa_dev_half.csv"


def run(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="shopguide evaluate")
    register(parser.add_subparsers(dest="kind", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_evaluate_ask_reports_per_language_cross_lingual_and_handoff(capsys):
    payload = run(["ask", "--json"])
    for key in ("zh", "en", "cross_lingual"):
        assert set(payload["results"][key]) == {"questions", "p_at_1", "answered_correctly"}
    assert "handoff_recall" in payload["results"]["unanswerable"]
    assert set(payload["split"]) == {"calibrated_on_half_0", "calibrated_on_half_1"}
    assert '"task": "ask"' in capsys.readouterr().out


def test_evaluate_aspects_reports_macro_f1_per_language(tmp_path):
    out = tmp_path / "aspects.json"
    payload = run(["aspects", "--json", str(out)])
    assert set(payload["results"]) == {"zh", "en"}
    assert all(0.0 <= r["macro_f1"] <= 1.0 for r in payload["results"].values())
    assert out.exists()


@pytest.mark.data
def test_evaluate_answers_on_epqa():
    if not EPQA.exists():
        pytest.skip(f"ePQA not found at {EPQA} (../shared/data)")
    payload = run(["answers", "--path", str(EPQA), "--json"])
    assert set(payload["results"]) >= {"bm25", "encoder", "hybrid", "model"}
    assert payload["questions"] > 0
