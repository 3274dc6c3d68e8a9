import numpy as np

from model.doubles import PlaceholderModel, untrained_snapshot
from model.examples import unpack_examples
from model.scoring import serving_from_snapshot
from state.catalog import Catalog
from state.item import ItemState
from state.user import UserState
from streams.events import Click, Review
from streams.learning.example_stream import RECORD_BYTES, ExampleBuilder, ExampleSink, unpack


def test_sink_packs_examples_into_bounded_records():
    sink = ExampleSink()
    examples = [bytes([n % 256]) * 1000 for n in range(700)]
    for n, e in enumerate(examples):
        sink.add(e, 10.0 if n < 400 else 12.5)
    records = sink.drain()
    assert len(records) == 3 and all(len(r) <= RECORD_BYTES + 64 for r in records)
    unpacked = [unpack(r) for r in records]
    assert [e for batch, _ in unpacked for e in batch] == examples
    assert {ts for _, ts in unpacked} == {12.5}
    assert sink.drain() == [] and len(sink) == 0


def test_foreign_training_records_are_refused():
    for junk in (b"", b"\xff\x00", b"\x92\xa1x\xa1y"):
        try:
            unpack(junk)
        except ValueError:
            continue
        raise AssertionError(f"accepted {junk!r}")


def test_examples_come_from_the_state_before_the_event():
    catalog = Catalog(3600.0)
    for n in range(20):
        item = ItemState()
        item.apply_catalog("shoes" if n % 2 else "bags", "", None, True, 1.0)
        item.apply_activity({"view": float(n)}, 1.0e9, 3600.0)
        catalog.upsert(f"i{n}", item)
    model = serving_from_snapshot(untrained_snapshot(1), catalog, interest_half_life_s=3600.0)
    builder = ExampleBuilder(catalog, 3600.0, seed=1)
    before = UserState()
    before.apply_click("i1", "view", 1.0e9, "shoes", 3600.0)
    click = Click("e", "u", "i3", "buy", 1.0e9 + 5, "shoes")
    raw = builder.click(model, before, click, "shoes")
    examples = unpack_examples(raw)
    positives = [e for e in examples if e.engaged == 1.0]
    assert len(positives) == 1 and positives[0].item_id == "i3" and positives[0].next_category == "shoes"
    assert all(e.item_id != "i3" for e in examples if e.engaged == 0.0)
    assert len(examples) > 1
    # The user context is the state before the click: one history item, not two.
    assert len([h for h in positives[0].user.history if any(h)]) == 1
    review = Review("r", "u", "i3", "great shoes", 1.0e9 + 6, rating=5)
    [r] = unpack_examples(builder.review(model, before, review, "shoes"))
    assert (r.positive, r.rating, r.text) == (1, 5.0, "great shoes")
    assert np.isfinite(r.weight)
    unrated = Review("r2", "u", "i3", "great shoes", 1.0e9 + 7)
    assert builder.review(model, before, unrated, "shoes") is None  # it would label no task


def test_a_model_that_does_not_learn_gets_no_examples():
    catalog = Catalog(3600.0)
    builder = ExampleBuilder(catalog, 3600.0)
    placeholder = PlaceholderModel(catalog, 3600.0)
    assert builder.click(placeholder, UserState(), Click("e", "u", "i", "view", 1.0e9), "") is None
