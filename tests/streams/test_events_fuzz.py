"""Property tests: no payload makes a validator do anything but accept or refuse with a reason."""

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.errors import InvalidEvent
from streams.events import REASONS, parse_click, parse_item, parse_review
from streams.testing.fuzzing import NOW, hostile_payloads

PARSERS = (parse_click, parse_review, parse_item)


@settings(max_examples=3000, deadline=None)
@given(payload=hostile_payloads, parser=st.sampled_from(PARSERS))
def test_every_payload_is_accepted_or_refused_with_a_reason(payload, parser):
    try:
        event = parser(payload, NOW)
    except InvalidEvent as exc:
        assert exc.reason in REASONS
        assert str(exc) and len(str(exc)) < 600  # precise, and never the whole payload again
    else:
        assert parser(event.to_json(), NOW) == event  # what is accepted round-trips
