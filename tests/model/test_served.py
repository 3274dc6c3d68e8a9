import numpy as np

from model.config import N_CANDIDATE_FEATURES
from model.retrieval import CandidatePool
from model.served import ServedPools


def _pool(*items: str) -> CandidatePool:
    return CandidatePool(list(items), [""] * len(items), np.zeros((len(items), N_CANDIDATE_FEATURES), np.float32))


def test_a_pool_is_handed_out_once_and_only_for_its_recommendation():
    pools = ServedPools(8)
    a = _pool("i1")
    pools.put("u1", "e1", a)
    assert pools.take("u1", "e2") is None  # the user's state moved on since: not this pool
    assert pools.take("u1", "e1") is None  # and the stale pool went with that look-up
    pools.put("u1", "e1", a)
    assert pools.take("u1", "e1") is a
    assert pools.take("u1", "e1") is None and len(pools) == 0


def test_the_least_recently_served_users_are_evicted_first():
    pools = ServedPools(2)
    for n in range(3):
        pools.put(f"u{n}", f"e{n}", _pool(f"i{n}"))
    pools.put("u1", "e9", _pool("i9"))  # u1 served again: now the most recent
    pools.put("u3", "e3", _pool("i3"))
    assert len(pools) == 2
    assert pools.take("u0", "e0") is None and pools.take("u2", "e2") is None
    assert pools.take("u1", "e9") is not None and pools.take("u3", "e3") is not None


def test_no_capacity_keeps_nothing():
    pools = ServedPools(0)
    pools.put("u1", "e1", _pool("i1"))
    assert len(pools) == 0 and pools.take("u1", "e1") is None
