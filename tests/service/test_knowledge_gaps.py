"""Knowledge gaps per item: unanswered and handed-off questions."""

from streams.service.gaps import QUESTIONS_KEPT, KnowledgeGaps


def test_only_unanswered_or_handed_off_questions_count():
    gaps = KnowledgeGaps()
    gaps.record("i1", "battery?", answered=True, handoff=False, ts=1.0)
    gaps.record("i1", "warranty in Peru?", answered=False, handoff=True, ts=2.0)
    gaps.record("i1", "human please", answered=True, handoff=True, ts=3.0)
    gaps.record("i1", "colour?", answered=False, handoff=False, ts=4.0)
    got = gaps.of("i1")
    assert (got["unanswered"], got["handoff"]) == (2, 2)
    assert [q["text"] for q in got["questions"]] == ["colour?", "human please", "warranty in Peru?"]
    assert gaps.of("i2") == {"item_id": "i2", "unanswered": 0, "handoff": 0, "questions": []}


def test_the_questions_kept_are_bounded():
    gaps = KnowledgeGaps()
    for n in range(QUESTIONS_KEPT + 5):
        gaps.record("i1", f"q{n}", answered=False, handoff=False, ts=float(n))
    got = gaps.of("i1")
    assert got["unanswered"] == QUESTIONS_KEPT + 5 and len(got["questions"]) == QUESTIONS_KEPT


def test_gaps_kept_in_rocksdb_are_read_back_on_open(tmp_path):
    gaps = KnowledgeGaps(tmp_path / "gaps")
    gaps.record("i1", "warranty in Peru?", answered=False, handoff=True, ts=2.0)
    gaps.record("i2", "colour?", answered=False, handoff=False, ts=3.0)
    before = gaps.of("i1"), gaps.of("i2")
    gaps.close()
    reopened = KnowledgeGaps(tmp_path / "gaps")
    try:
        assert (reopened.of("i1"), reopened.of("i2")) == before
        reopened.record("i1", "in Chile?", answered=False, handoff=True, ts=4.0)
        assert reopened.of("i1")["handoff"] == 2
    finally:
        reopened.close()


def test_only_the_items_with_the_newest_gaps_are_kept_across_a_reopen(tmp_path, monkeypatch):
    monkeypatch.setattr("streams.service.gaps.ITEMS_MAX", 2)
    gaps = KnowledgeGaps(tmp_path / "gaps")
    for n, item in enumerate(["old", "mid", "new"]):
        gaps.record(item, "?", answered=False, handoff=False, ts=float(n))
    gaps.close()
    reopened = KnowledgeGaps(tmp_path / "gaps")
    try:
        assert [reopened.of(i)["unanswered"] for i in ("old", "mid", "new")] == [0, 1, 1]
    finally:
        reopened.close()
