from pathlib import Path

from model.offline.datasets import Rejected, read_taobao
from streams.events import Click, Item, Review, parse_click, parse_item, parse_review
from streams.tools.replay import Pacer, plan, stamp
from streams.tools.sample import generate

TAOBAO = (
    "543462,1715,1464116,pv,1511658000\n662867,2244074,1575622,buy,1511658001\n"
    "1,2,3,teleport,1511658002\n301780,543546,4181361,pv,15"
)


def test_taobao_rows_become_clicks_and_the_truncated_line_is_rejected(tmp_path: Path):
    path = tmp_path / "tb.csv"
    path.write_text(TAOBAO)
    out = list(plan("taobao", path))
    clicks = [p.event for p in out if not isinstance(p, Rejected)]
    rejected = [p for p in out if isinstance(p, Rejected)]
    assert [c.action for c in clicks] == ["click", "buy"]
    assert [(r.line, "behavior" in r.reason or "timestamp" in r.reason) for r in rejected] == [(3, True), (4, True)]
    assert "truncated" in rejected[1].reason
    for c in clicks:
        assert parse_click(c.to_json(), now=1.6e9) == c  # valid under the contract
    assert len([r for r in read_taobao(path) if isinstance(r, Rejected)]) == 2


def test_movielens_replays_catalog_then_ratings(tmp_path: Path):
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n")
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.5,964982703\n1,1,2.0,964982000\n")
    out = list(plan("movielens", tmp_path / "ratings.csv"))
    assert out[0].kind == "items" and out[0].event == Item("1", "Animation", "Toy Story (1995)")
    assert [p.event.action for p in out[1:]] == ["view", "fav"]  # time order
    assert parse_item(out[0].event.to_json()).category == "Animation"


def test_reviews_replay(tmp_path: Path):
    path = tmp_path / "zh.csv"
    path.write_text("cat,label,review\n书籍,1,\ufeff很好看\n书籍,0,\n")
    out = list(plan("reviews-zh", path))
    assert isinstance(out[1], Rejected)
    review = out[0].event
    assert isinstance(review, Review) and review.text == "很好看" and review.item_id == "zh-书籍"
    assert parse_review(review.to_json()) == review


def test_stamp_and_pacer():
    c = Click("e", "u", "i", "view", 1.0)
    assert stamp(c, 5.0).ts == 5.0
    item = Item("i", "c")
    assert stamp(item, 5.0) is item
    Pacer(0).wait()  # no rate: no wait


def test_generated_sample_is_valid_and_deterministic():
    a, b = generate(300, seed=3), generate(300, seed=3)
    assert a == b
    assert len(a.clicks) + len(a.reviews) + len(a.invalid) == 300
    for c in a.clicks:
        parse_click(stamp(c, 1.7e9).to_json(), now=1.7e9)
    for r in a.reviews:
        parse_review(stamp(r, 1.7e9).to_json(), now=1.7e9)
    assert any(not i.in_stock for i in a.items)
    assert any("好" in r.text or "差" in r.text or "满意" in r.text for r in a.reviews)
