import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_rl.two_hot import soft_ce, symexp, symlog, two_hot, two_hot_inv

BINS, VMIN, VMAX = 101, -10.0, 10.0


def test_symlog_symexp_round_trip():
    x = torch.tensor([-1e4, -3.5, -1e-3, 0.0, 2e-4, 1.0, 7.0, 5e3])
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-5, atol=1e-6)
    assert torch.all(torch.sign(symlog(x)) == torch.sign(x))


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-2e4, max_value=2e4, allow_nan=False))
def test_two_hot_round_trip(value):
    x = torch.tensor([value], dtype=torch.float64)
    target = two_hot(x, BINS, VMIN, VMAX)
    assert torch.allclose(target.sum(-1), torch.ones(1, dtype=torch.float64))
    assert (target > 0).sum() <= 2 and (target >= 0).all()
    decoded = two_hot_inv(torch.log(target + 1e-30), VMIN, VMAX)  # logits whose softmax is the target
    expected = symexp(symlog(x).clamp(VMIN, VMAX))
    torch.testing.assert_close(decoded, expected, rtol=1e-6, atol=1e-6)


def test_two_hot_clamps_outside_range():
    top = two_hot(torch.tensor([1e9]), BINS, VMIN, VMAX)
    assert top[0, -1] == 1.0
    bottom = two_hot(torch.tensor([-1e9]), BINS, VMIN, VMAX)
    assert bottom[0, 0] == 1.0


def test_soft_ce_is_minimised_by_the_target_distribution():
    x = torch.tensor([0.37, -2.5])
    best = torch.log(two_hot(x, BINS, VMIN, VMAX) + 1e-12)
    other = torch.log(two_hot(x + 0.5, BINS, VMIN, VMAX) + 1e-12)
    assert torch.all(soft_ce(best, x, VMIN, VMAX) < soft_ce(other, x, VMIN, VMAX))
