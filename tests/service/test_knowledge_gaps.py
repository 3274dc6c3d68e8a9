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
