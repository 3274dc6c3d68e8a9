import numpy as np

from model.scratch import Scratch


def test_a_scratch_array_is_kept_while_large_enough_and_grown_filled() -> None:
    s = Scratch(np.int32, -1, 8)
    a = s.at_least(3)
    assert a.dtype == np.int32 and len(a) == 8 and (a == -1).all()
    assert s.at_least(8) is a  # no allocation while it holds the ids
    a[2] = 5  # a kernel that did not reset would leave this: a grown array does not carry it
    b = s.at_least(9)
    assert len(b) == 16 and (b == -1).all() and len(s.at_least(40)) == 40  # doubling, or the size asked
