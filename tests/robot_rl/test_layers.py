import torch
import torch.nn.functional as F

from robot_rl.layers import EnsembleMLP, SimNorm, mish, mlp, random_shift


def test_simnorm_groups_are_probability_simplices():
    x = torch.randn(5, 64) * 10
    y = SimNorm(8)(x)
    groups = y.reshape(5, 8, 8)
    torch.testing.assert_close(groups.sum(-1), torch.ones(5, 8))
    assert (y >= 0).all()
    # each group is exactly the softmax of that group
    torch.testing.assert_close(groups, torch.softmax(x.reshape(5, 8, 8), -1))


def test_fast_mish_matches_torch():
    x = torch.linspace(-30, 30, 10001)
    torch.testing.assert_close(mish(x), F.mish(x), atol=2e-6, rtol=1e-5)
    assert torch.isfinite(mish(torch.tensor([-1e4, 1e4]))).all()


def test_fast_mish_gradient_matches_torch():
    x = torch.linspace(-30, 30, 10001, requires_grad=True)
    mish(x).backward(torch.ones_like(x))
    ref = x.detach().clone().requires_grad_(True)
    F.mish(ref).backward(torch.ones_like(ref))
    torch.testing.assert_close(x.grad, ref.grad, atol=2e-6, rtol=1e-5)
    assert torch.autograd.gradcheck(mish, torch.randn(32, dtype=torch.float64, requires_grad=True))


def test_ensemble_members_subset_equals_those_rows_of_the_full_output():
    torch.manual_seed(0)
    ens = EnsembleMLP(5, 6, [16, 16], 4).eval()
    x = torch.randn(3, 6, requires_grad=True)
    members = torch.tensor([4, 0])
    sub = ens(x, members=members)
    torch.testing.assert_close(sub, ens(x)[members])
    sub.sum().backward()
    assert ens.weights[0].grad[[1, 2, 3]].abs().sum() == 0 and ens.weights[0].grad[[0, 4]].abs().sum() > 0


def test_ensemble_matches_member_by_member_mlps():
    torch.manual_seed(0)
    ens = EnsembleMLP(3, 6, [16, 16], 4).eval()
    x = torch.randn(2, 5, 6)
    out = ens(x)
    assert out.shape == (3, 2, 5, 4)
    for k in range(3):
        h = x
        for i in range(3):
            h = h @ ens.weights[i][k] + ens.biases[i][k, 0]
            if i < 2:
                h = F.mish(F.layer_norm(h, (16,)) * ens.ln_weights[i][k, 0] + ens.ln_biases[i][k, 0])
        torch.testing.assert_close(out[k], h, atol=1e-5, rtol=1e-5)


def test_ensemble_detach_blocks_parameter_gradients_only():
    ens = EnsembleMLP(2, 3, [8], 1)
    x = torch.randn(4, 3, requires_grad=True)
    ens(x, detach=True).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in ens.parameters())


def test_ensemble_dropout_only_in_training():
    ens = EnsembleMLP(2, 3, [64], 2, dropout=0.5)
    x = torch.randn(16, 3)
    ens.eval()
    torch.testing.assert_close(ens(x), ens(x))
    ens.train()
    assert not torch.allclose(ens(x), ens(x))
    torch.testing.assert_close(ens(x, dropout=False), ens.eval()(x))


def test_mlp_output_activation():
    net = mlp(4, [8, 8], 16, out_act=SimNorm(8))
    y = net(torch.randn(3, 4))
    torch.testing.assert_close(y.reshape(3, 2, 8).sum(-1), torch.ones(3, 2))


def test_random_shift_is_an_integer_translation_within_pad():
    torch.manual_seed(0)
    img = torch.arange(16 * 16, dtype=torch.float32).reshape(1, 1, 16, 16).repeat(8, 3, 1, 1)
    out = random_shift(img, pad=2)
    assert out.shape == img.shape
    for n in range(8):
        # the centre of the shifted image is the original shifted by (dy, dx) with |d| <= pad
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(out[n, 0, 4:12, 4:12], img[n, 0, 4 + dy:12 + dy, 4 + dx:12 + dx])]
        assert len(matches) == 1
