"""Merchandising rules end to end: ``shopguide rules`` writes the rules topic, two real workers
follow it, and each kind shows in the next recommendation of the users it is for; an expired and a
deleted rule stop acting, an invalid record is dead-lettered once, out-of-stock items stay out. A
shopper's dislike and ignored impressions demote items in their next recommendation. A new item is
explored in the next recommendation of a shopper of its category. Experiments (``shopguide
experiments``) split shoppers into arms on both workers, attribute their later actions, and fill
the shadow topic without touching the recommendations."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from streams.events import Click, Item, parse_experiment
from streams.partitioning import partition_for
from streams.testing.harness import Cluster, TopicReader, wait_until
from streams.tools.cluster import child_env, get_json, get_text

pytestmark = pytest.mark.integration

ITEMS = [f"rl-{n}" for n in range(60)]
OUT_OF_STOCK = "rl-oos"
_clicks = itertools.count()


def _category(item_id: str) -> str:
    return "cake" if int(item_id.rsplit("-", 1)[1]) % 2 else "tea"


@pytest.fixture(scope="module")
def two(two_workers: Cluster) -> Cluster:
    """The two workers with a catalog of 60 items and an out-of-stock one."""
    c, now = two_workers, time.time()
    for item_id in ITEMS:
        c.producer.send(c.topics.items, item_id.encode(), Item(item_id, _category(item_id), ts=now).to_json())
    c.producer.send(c.topics.items, OUT_OF_STOCK.encode(), Item(OUT_OF_STOCK, "tea", in_stock=False).to_json())
    c.producer.flush()
    c.wait_catalog(len(ITEMS) + 1)
    return c


def users(prefix: str) -> list[str]:
    """A user in each of the four partitions: the two workers share them, so both serve these."""
    found: dict[int, str] = {}
    for n in itertools.count():
        found.setdefault(partition_for(f"{prefix}-{n}", 4), f"{prefix}-{n}")
        if len(found) == 4:
            return [found[p] for p in sorted(found)]
    raise AssertionError("unreachable")


def recommend(cluster: Cluster, user: str) -> list[str]:
    """The items of the recommendation answering a fresh click of ``user`` on a tea item."""
    return [i["item_id"] for i in answer(cluster, user)]


def answer(cluster: Cluster, user: str) -> list[dict[str, Any]]:
    """The items (with their scores and reasons) answering a fresh click of ``user``."""
    items: list[dict[str, Any]] = respond(cluster, user)["items"]
    return items


def respond(cluster: Cluster, user: str, item_id: str = "rl-0", action: str = "view") -> dict[str, Any]:
    """The recommendation answering a fresh ``action`` of ``user`` on ``item_id``."""
    event_id = f"{user}-c{next(_clicks)}"
    click = Click(event_id, user, item_id, action, time.time(), _category(item_id))
    cluster.send("clicks", user, click.to_json())
    [rec] = cluster.recommendations.wait_for(lambda m: isinstance(m, dict) and m["trigger_event_id"] == event_id, 1, 60)
    out: dict[str, Any] = rec
    return out


def rules_cli(cluster: Cluster, *args: str, command: str = "rules") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "streams.tools.cli", command, *args],
        env=child_env(cluster.settings),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done.stdout.decode()


def put(cluster: Cluster, tmp_path: Path, *rules: dict[str, Any]) -> None:
    path = tmp_path / f"rules-{next(_clicks)}.json"
    path.write_text(json.dumps(list(rules)))
    rules_cli(cluster, "put", str(path))


def until(cluster: Cluster, people: list[str], check: Any, what: str) -> None:
    """Until a fresh recommendation of every one of ``people`` passes ``check``."""
    wait_until(lambda: all(check(recommend(cluster, u)) for u in people), 60, what)


def absent(cluster: Cluster, user: str) -> list[str]:
    """Catalog items outside ``user``'s current top 10."""
    shown = set(recommend(cluster, user))
    return [i for i in ITEMS[1:] if i not in shown]


def test_each_kind_acts_on_its_segment_on_both_workers(two: Cluster, tmp_path: Path) -> None:
    pin_users, filter_users, boost_users, promote_users = (users(p) for p in ("pin", "filter", "boost", "promote"))
    outside = absent(two, pin_users[0])
    pinned, boosted, promoted = outside[0], outside[1], outside[2:4]
    put(
        two,
        tmp_path,
        {"rule_id": "r-pin", "kind": "pin", "item_id": pinned, "position": 1, "segment": {"user_ids": pin_users}},
        {"rule_id": "r-oos", "kind": "pin", "item_id": OUT_OF_STOCK, "position": 2},
        {"rule_id": "r-filter", "kind": "filter", "category": "cake", "segment": {"user_ids": filter_users}},
        {
            "rule_id": "r-boost",
            "kind": "boost",
            "item_ids": [boosted],
            "factor": 1000,
            "segment": {"user_ids": boost_users},
        },
        {
            "rule_id": "r-promote",
            "kind": "promote",
            "item_ids": promoted,
            "slots": 2,
            "segment": {"user_ids": promote_users},
        },
    )
    until(two, pin_users, lambda items: items[0] == pinned, "the pin")
    until(two, filter_users, lambda items: items and all(_category(i) == "tea" for i in items), "the filter")
    until(two, boost_users, lambda items: items[0] == boosted, "the boost")
    until(two, promote_users, lambda items: set(promoted) <= set(items), "the promote")
    # Out of stock stays out, whatever the pin; the pin is for no one else.
    for user in (*pin_users, *filter_users):
        items = recommend(two, user)
        assert OUT_OF_STOCK not in items and len(items) == 10
    assert recommend(two, boost_users[0])[0] != pinned
    # Each placed or boosted item says which rule put it there.
    assert "rule:r-pin" in answer(two, pin_users[0])[0]["reasons"]
    assert "rule:r-boost" in answer(two, boost_users[0])[0]["reasons"]
    assert all("rule:r-promote" in i["reasons"] for i in answer(two, promote_users[0]) if i["item_id"] in promoted)
    assert all(i["reasons"] for i in answer(two, filter_users[0]))  # every item says why
    # Both workers published recommendations (each owns some of the four partitions).
    for worker in two.workers:
        metric = [
            line
            for line in get_text(worker.url + "/metrics").splitlines()
            if line.startswith("shopguide_recommendations_total")
        ]
        assert metric and float(metric[0].split()[-1]) > 0, worker.url

    listed = [json.loads(line)["rule_id"] for line in rules_cli(two, "list").splitlines()]
    assert listed == ["r-boost", "r-filter", "r-oos", "r-pin", "r-promote"]
    rules_cli(two, "delete", "r-pin")
    until(two, pin_users, lambda items: items[0] != pinned, "the deleted pin to stop")
    for rule_id in ("r-oos", "r-filter", "r-boost", "r-promote"):
        rules_cli(two, "delete", rule_id)
    assert rules_cli(two, "list") == ""


def test_a_rule_acts_only_inside_its_time_window(two: Cluster, tmp_path: Path) -> None:
    [user, *_] = users("window")
    pinned, later = absent(two, user)[:2]
    # The window must outlast the rule's way to the workers; on a loaded machine that can take
    # longer than a short window, so a window that ended unseen is put again, longer.
    for window in (8, 30, 90):
        end = time.time() + window
        put(
            two,
            tmp_path,
            {"rule_id": "r-window", "kind": "pin", "item_id": pinned, "position": 1, "end_ts": end},
            {"rule_id": "r-later", "kind": "pin", "item_id": later, "position": 1, "start_ts": end + 3600},
        )
        if _tops_before(two, user, pinned, end):
            break
    else:
        raise AssertionError("the pin never showed inside its window")
    wait_until(lambda: time.time() > end, window + 5, "the window's end")
    items = recommend(two, user)
    assert items[0] not in (pinned, later)
    rules_cli(two, "delete", "r-window")
    rules_cli(two, "delete", "r-later")


def _tops_before(cluster: Cluster, user: str, item: str, end: float) -> bool:
    """Whether ``item`` tops a fresh recommendation of ``user`` before ``end``."""
    try:
        wait_until(lambda: time.time() < end and recommend(cluster, user)[0] == item, end - time.time(), "the pin")
    except AssertionError:
        return False
    return True


def test_an_invalid_rule_is_dead_lettered_once_and_changes_nothing(two: Cluster) -> None:
    two.send("rules", "r-bad", json.dumps({"rule_id": "r-bad", "kind": "shove", "item_id": "rl-1"}).encode())
    [letter] = two.deadletter.wait_for(lambda m: isinstance(m, dict) and m["source_topic"] == two.topics.rules)
    assert letter["reason"] == "out_of_range" and "field 'kind'" in letter["error"]
    user = users("invalid")[0]
    assert len(recommend(two, user)) == 10  # the workers go on serving
    # Two workers follow the topic; only the rules agent of their group dead-letters.
    time.sleep(3)
    assert len([m for m in two.deadletter.items if m.value["source_topic"] == two.topics.rules]) == 1


def _events(cluster: Cluster, topic: str, outcome: str) -> float:
    """``shopguide_events_total`` of ``topic`` and ``outcome``, summed over the workers."""
    labels = (f'outcome="{outcome}"', f'topic="{topic}"')
    return sum(
        float(line.split()[-1])
        for worker in cluster.workers
        for line in get_text(worker.url + "/metrics").splitlines()
        if line.startswith("shopguide_events_total") and all(x in line for x in labels)
    )


def test_a_dislike_and_ignored_impressions_demote_in_the_next_recommendation(two: Cluster) -> None:
    picky, bored = users("feedback")[:2]
    disliked = next(i for i in recommend(two, picky) if i != "rl-0")
    event_id = f"{picky}-dislike"
    two.send("clicks", picky, Click(event_id, picky, disliked, "dislike", time.time(), "tea").to_json())
    [rec] = two.recommendations.wait_for(lambda m: isinstance(m, dict) and m["trigger_event_id"] == event_id, 1, 60)
    assert disliked not in [i["item_id"] for i in rec["items"]] and len(rec["items"]) == 10
    assert disliked not in recommend(two, picky)  # and it stays out after the next click

    top = answer(two, bored)
    shown = next(i["item_id"] for i in top if i["item_id"] != "rl-0")
    before = [i["item_id"] for i in top].index(shown)
    topic, now = two.topics.impressions, time.time()
    duplicates, processed = _events(two, topic, "duplicate"), _events(two, topic, "processed")

    def impression(n: int) -> bytes:
        return json.dumps({"event_id": f"{bored}-s{n}", "user_id": bored, "item_ids": [shown], "ts": now}).encode()

    for n in (1, 1, 2):  # the first one sent twice counts once: two of the limit's three
        two.send("impressions", bored, impression(n))
    two.send("impressions", bored, json.dumps({"event_id": "s-bad", "user_id": bored, "item_ids": [shown]}).encode())
    [letter] = two.deadletter.wait_for(lambda m: isinstance(m, dict) and m["source_topic"] == topic, 1, 60)
    assert letter["reason"] == "missing_field" and "'ts'" in letter["error"]
    wait_until(lambda: _events(two, topic, "processed") >= processed + 2, 30, "two impressions")
    assert _events(two, topic, "duplicate") == duplicates + 1
    assert all("demoted:ignored" not in i["reasons"] for i in answer(two, bored))
    two.send("impressions", bored, impression(3))

    def demoted() -> bool:
        items = answer(two, bored)
        ids = [i["item_id"] for i in items]
        return shown not in ids or (
            ids.index(shown) > before and "demoted:ignored" in items[ids.index(shown)]["reasons"]
        )

    wait_until(demoted, 30, "the item shown three times without an action to be demoted")


EXPERIMENT = {
    "experiment_id": "x-ab",
    "arms": [
        {"name": "a", "share": 0.5},
        {"name": "b", "share": 0.5, "rules": "none"},
        {"name": "ghost", "share": 0, "rules": "none"},
    ],
    "shadow": "ghost",
}


def _figures(cluster: Cluster) -> dict[str, dict[str, int]]:
    """Per arm of x-ab, recommendations and attributed clicks summed over the workers' own figures
    (``GET /experiments?scope=worker``)."""
    out: dict[str, dict[str, int]] = {}
    for worker in cluster.workers:
        status, body = get_json(worker.url + "/experiments?scope=worker")
        assert status == 200 and body["scope"] == "worker", body
        for arm, f in body["figures"].get("x-ab", {}).items():
            mine = out.setdefault(arm, {"recommendations": 0, "clicks": 0})
            mine["recommendations"] += f["recommendations"]
            mine["clicks"] += f["attributed"]["click"]["actions"]
    return out


def test_experiment_arms_split_attribute_and_shadow_on_both_workers(two: Cluster, tmp_path: Path) -> None:
    shadow = TopicReader(two.settings, two.topics.shadow)
    try:
        path = tmp_path / "experiment.json"
        path.write_text(json.dumps(EXPERIMENT))
        rules_cli(two, "put", str(path), command="experiments")
        expected = parse_experiment(json.dumps(EXPERIMENT).encode())
        people = [u for prefix in ("xa", "xb", "xc", "xd") for u in users(prefix)]  # 16, 4 in each partition
        wait_until(lambda: respond(two, people[0]).get("arm") is not None, 60, "the workers to follow the experiment")
        first = {u: respond(two, u) for u in people}
        arms = {u: expected.arm_of(u).name for u in people}
        assert {rec["arm"] for rec in first.values()} == {"a", "b"}
        for user, rec in first.items():
            assert (rec["experiment"], rec["arm"]) == ("x-ab", arms[user]) and rec["rec_id"]
        before = _figures(two)
        for user, rec in first.items():  # a click on the first item of each answer: attributed to its arm
            respond(two, user, rec["items"][0]["item_id"], "click")
        after = _figures(two)
        for arm in ("a", "b"):
            assert after[arm]["clicks"] - before[arm].get("clicks", 0) == list(arms.values()).count(arm)
            assert after[arm]["recommendations"] - before[arm]["recommendations"] == list(arms.values()).count(arm)
        # Either worker answers with the whole group's figures: the sum of both workers' own, each
        # of which counted some of the shoppers (four partitions over two workers).
        for worker in two.workers:
            status, own = get_json(worker.url + "/experiments?scope=worker")
            counted = sum(f["recommendations"] for f in own["figures"]["x-ab"].values())
            assert status == 200 and 0 < counted < sum(f["recommendations"] for f in after.values())
            status, body = get_json(worker.url + "/experiments")
            assert status == 200 and (body["scope"], body["workers"], body["unreachable"]) == ("cluster", 2, []), body
            for arm in ("a", "b"):
                figures = body["figures"]["x-ab"][arm]
                assert figures["recommendations"] == after[arm]["recommendations"]
                assert figures["attributed"]["click"]["actions"] == after[arm]["clicks"]
        attributed = sum(
            float(line.split()[-1])
            for worker in two.workers
            for line in get_text(worker.url + "/metrics").splitlines()
            if line.startswith("shopguide_attributed_total{") and 'experiment="x-ab"' in line
        )
        assert attributed == after["a"]["clicks"] + after["b"]["clicks"]
        # The shadow arm scored every one of those batches, to the shadow topic only.
        ids = {rec["rec_id"] for rec in first.values()}
        ghosts = shadow.wait_for(lambda m: isinstance(m, dict) and m["rec_id"] in ids, len(ids), 60)
        assert {g["arm"] for g in ghosts} == {"ghost"} and all(len(g["items"]) == 10 for g in ghosts)
        assert not [m for m in two.recommendations.items if isinstance(m.value, dict) and m.value.get("arm") == "ghost"]
        # An invalid experiment is dead-lettered; the one in force stays.
        two.send("experiments", "x-bad", json.dumps({**EXPERIMENT, "experiment_id": "x-bad", "shadow": "a"}).encode())
        [letter] = two.deadletter.wait_for(
            lambda m: isinstance(m, dict) and m["source_topic"] == two.topics.experiments, 1, 60
        )
        assert "share must be 0" in letter["error"]
        listed = [
            json.loads(line)["experiment_id"] for line in rules_cli(two, "list", command="experiments").splitlines()
        ]
        assert listed == ["x-ab"]
        rules_cli(two, "delete", "x-ab", command="experiments")
        wait_until(lambda: "arm" not in respond(two, people[0]), 60, "the deleted experiment to stop")
    finally:
        shadow.close()


def test_a_new_item_is_explored_in_the_next_recommendation_of_a_shopper_of_its_category(two: Cluster) -> None:
    """Exploration (one place by default): a shopper viewed 21 jam items, which retrieval's 20
    popular jam items and its popular items prefer to an item no one engaged with. An item of
    theirs published on the items topic after that, the only fresh jam item they have not
    touched, shows with the reason ``explore`` as soon as the workers' catalogs hold it."""
    [shopper, other, *_] = users("explore")
    viewed = [f"ex-{n}" for n in range(21)]
    now = time.time()
    for n, item_id in enumerate(viewed):
        two.send("clicks", shopper, Click(f"{shopper}-v{n}", shopper, item_id, "view", now + n / 1000, "jam").to_json())
    two.recommendations.wait_for(lambda m: isinstance(m, dict) and m["trigger_event_id"] == f"{shopper}-v20", 1, 60)
    two.send("items", "ex-new", Item("ex-new", "jam", ts=time.time()).to_json())
    two.wait_catalog(len(ITEMS) + 1 + len(viewed) + 1)
    event_id = f"{shopper}-again"
    two.send("clicks", shopper, Click(event_id, shopper, viewed[0], "view", time.time(), "jam").to_json())
    [rec] = two.recommendations.wait_for(lambda m: isinstance(m, dict) and m["trigger_event_id"] == event_id, 1, 60)
    reasons = {i["item_id"]: i["reasons"] for i in rec["items"]}
    assert reasons.get("ex-new") == ["explore"] and len(reasons) == 10, reasons
    # Another shopper's explored item is a fresh item of their category, never out of stock.
    explored = [i["item_id"] for i in answer(two, other) if i["reasons"] == ["explore"]]
    assert len(explored) <= 1 and all(i in ITEMS and _category(i) == "tea" for i in explored), explored
