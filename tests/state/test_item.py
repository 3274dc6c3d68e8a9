from state.item import AlertRule, ItemState


def test_catalog_records_apply_in_time_order():
    s = ItemState()
    assert s.apply_catalog("shoes", "Boot", 10.0, True, 100.0)
    assert not s.apply_catalog("bags", "Bag", 5.0, False, 50.0)  # older record
    assert (s.category, s.in_stock) == ("shoes", True)
    assert s.apply_catalog("shoes", "Boot", 10.0, False, 150.0)
    assert not s.in_stock


def test_activity_category_only_fills_in_for_items_not_in_catalog():
    s = ItemState()
    s.apply_activity({"view": 2.0}, 100.0, 3600.0, "from-clicks")
    assert s.category == "from-clicks"
    s.apply_catalog("catalog", "", None, True, 100.0)
    s.apply_activity({"buy": 1.0}, 101.0, 3600.0, "from-clicks")
    assert s.category == "catalog"
    assert s.popularity_score(101.0, 3600.0) > 5.0


def test_sentiment_figures_and_bounded_window():
    s = ItemState()
    for n in range(30):
        s.apply_review(n % 3 != 0, 4 if n % 3 else 1, window=10)
    f = s.figures()
    assert f.reviews == 30 and len(s.recent) == 10
    assert abs(f.positive_ratio - 20 / 30) < 1e-9
    assert f.mean_rating is not None


def test_alert_fires_once_on_a_negative_burst_and_rearms():
    rule = AlertRule(window=10, min_reviews=5, negative_ratio=0.5, jump=0.25)
    s = ItemState()
    fired = []
    for _ in range(20):
        s.apply_review(True, 5, rule.window)
        fired.append(s.check_alert(rule))
    assert not any(fired)
    burst = []
    for _ in range(8):
        s.apply_review(False, 1, rule.window)
        burst.append(s.check_alert(rule))
    alerts = [f for f in burst if f is not None]
    assert len(alerts) == 1  # once, not on every review
    assert alerts[0].recent_negative_ratio >= 0.5
    assert alerts[0].baseline_negative_ratio < 0.25
    for _ in range(10):
        s.apply_review(True, 5, rule.window)
        assert s.check_alert(rule) is None
    assert not s.alerting  # re-armed


def test_reviews_interleaved_around_the_threshold_alert_once():
    rule = AlertRule(window=10, min_reviews=4, negative_ratio=0.5, jump=0.25, rearm_ratio=0.3)
    s = ItemState()
    alerts = 0
    for positive in [True] * 10 + [False, True] * 8:  # hovers at 50% negative
        s.apply_review(positive, None, rule.window)
        alerts += s.check_alert(rule) is not None
    assert alerts == 1


def test_steadily_bad_item_does_not_alert_without_a_jump():
    rule = AlertRule(window=10, min_reviews=5, negative_ratio=0.5, jump=0.25)
    s = ItemState()
    results = []
    for n in range(40):
        s.apply_review(n % 3 == 0, None, rule.window)  # always 2/3 negative
        results.append(s.check_alert(rule))
    # Early reviews have no baseline yet (0.0), so at most the first crossing fires.
    assert sum(r is not None for r in results[15:]) == 0


def test_round_trip():
    s = ItemState()
    s.apply_catalog("c", "t", 1.5, False, 10.0)
    s.apply_activity({"view": 1.0}, 11.0, 60.0)
    s.apply_review(False, 2, 5)
    s.applied.record("item-reviews", (0, 3, 1_700_000_000_000), "r1")
    assert ItemState.from_bytes(s.to_bytes()) == s
    assert ItemState.from_bytes(ItemState().to_bytes()) == ItemState()


def test_complaint_aspects_of_recent_negative_reviews_are_counted():
    s = ItemState()
    s.apply_review(False, 1, 3, ["size_fit"])
    s.apply_review(False, 2, 3, ["size_fit", "shipping"])
    s.apply_review(True, 5, 3, ["quality"])  # a positive review complains of nothing
    assert s.figures().recent_aspects == (("size_fit", 2), ("shipping", 1))
    s.apply_review(False, 1, 3)  # no aspects known; the oldest review leaves the window
    assert s.figures().recent_aspects == (("size_fit", 1), ("shipping", 1))
    assert s.figures().recent_negative_ratio == 2 / 3
    assert ItemState.from_bytes(s.to_bytes()) == s
    old = ItemState(reviews=2, positive=1, recent=[1, 0])  # a state written before aspects: 0 is negative
    assert old.figures().recent_negative_ratio == 0.5 and old.figures().recent_aspects == ()
