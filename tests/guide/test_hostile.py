"""Whatever text arrives, indexing and answering do not raise."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guide.aspects import detect_aspects
from guide.knowledge import Answer
from guide.text import split_sentences, tokens

HOSTILE = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=50),
    st.sampled_from(
        ["", " ", "\x00", "🙂" * 500, "？？？", "a" * 5000, "\ud800", "<script>", "'; DROP TABLE", "\u202e"]
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=HOSTILE, item=st.sampled_from([None, "g-earbuds", "unknown", ""]))
def test_ask_never_raises(demo_kb, text, item):
    answer = demo_kb.ask(text, item_id=item)
    assert isinstance(answer, Answer)
    assert 0.0 <= answer.confidence <= 1.0 and answer.lang in ("zh", "en")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=HOSTILE)
def test_reviews_and_aspects_never_raise(kb, text):
    kb.add_reviews([{"event_id": f"h-{hash(text)}", "item_id": "it-1", "text": text, "ts": 1.0}, {"junk": text}, text])
    split_sentences(text)
    tokens(text)
    assert detect_aspects(text)
    assert kb.draft_reply({"event_id": "x", "item_id": "it-1", "text": text, "rating": 1}, None) is not None
