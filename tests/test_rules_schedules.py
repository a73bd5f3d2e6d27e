"""ζ schedules: decay curves, cadence, stop point, bad input."""

import math

import pytest

from topo.errors import ParameterError, TopoError
from topo.rules import Schedule


def test_constant_every_epoch_skips_the_last_epoch_like_set():
    s = Schedule(total=5)
    assert [e for e in range(0, 7) if s.due(epoch=e)] == [0, 1, 2, 3, 4]
    assert s.zeta(0.3, 4) == 0.3
    assert not s.due(step=10)  # per-epoch schedules ignore optimizer steps
    open_ended = Schedule()
    assert open_ended.due(epoch=1000) and open_ended.zeta(0.3, 1000) == 0.3


@pytest.mark.parametrize("t", [0, 10, 25, 37.5, 60, 75, 100])
def test_decays_follow_their_formulas(t):
    total, stop = 100, 0.75
    p = min(1.0, t / (stop * total))
    cos = Schedule("cosine", every=5, stop_at=stop, total=total)
    lin = Schedule("linear", every=5, stop_at=stop, total=total)
    assert cos.zeta(0.3, t) == pytest.approx(0.15 * (1 + math.cos(math.pi * p)))
    assert lin.zeta(0.3, t) == pytest.approx(0.3 * (1 - p))


def test_step_cadence_and_stop_at():
    s = Schedule(every=100, stop_at=0.75, total=1000)
    assert [k for k in range(0, 1001, 50) if s.due(step=k)] == [100, 200, 300, 400, 500, 600, 700]
    assert not s.due(epoch=3)


def test_custom_decay_and_total_set_later():
    s = Schedule(decay=lambda p: 1 - p * p, every="epoch")
    with pytest.raises(ParameterError, match="total training length"):
        s.zeta(0.3, 1)
    s.total = 10
    assert s.zeta(0.5, 5) == pytest.approx(0.5 * 0.75)
    bad = Schedule(decay=lambda p: 2.0, total=10)
    with pytest.raises(ParameterError, match="factor in \\[0, 1\\]"):
        bad.zeta(0.3, 1)
    s2 = Schedule(stop_at=0.5)
    with pytest.raises(ParameterError, match="stop_at < 1 needs"):
        s2.due(epoch=1)
    s2.load_state_dict(Schedule(total=8).state_dict())
    assert s2.due(epoch=3) and not s2.due(epoch=4)


@pytest.mark.parametrize("kwargs,match", [
    ({"decay": "exponential"}, "unknown decay 'exponential'"),
    ({"decay": 3}, "decay must be"),
    ({"every": 0}, "every must be"),
    ({"every": "batch"}, "every must be"),
    ({"every": True}, "every must be"),
    ({"stop_at": 0}, "stop_at must be"),
    ({"stop_at": 1.5}, "stop_at must be"),
    ({"total": 0}, "total must be"),
    ({"total": 2.5}, "total must be"),
])
def test_bad_schedules_are_clear_errors(kwargs, match):
    with pytest.raises(TopoError, match=match):
        Schedule(**kwargs)
