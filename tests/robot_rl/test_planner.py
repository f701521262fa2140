import dataclasses

import pytest
import torch
import torch.nn as nn

from robot_rl.agent_config import AgentConfig, PlannerConfig
from robot_rl.planner import plan, sample_noise
from robot_rl.two_hot import two_hot
from robot_rl.world_model import WorldModel

TINY = AgentConfig(model_size="1M", enc_dim=32, mlp_dim=32, latent_dim=16, num_q=3)
A = 3
TARGET = torch.tensor([0.5, -0.3, 0.8])


class QuadraticReward(nn.Module):
    """Reward logits that decode to -||a - TARGET||^2: the best plan is TARGET at every step."""

    def forward(self, za: torch.Tensor) -> torch.Tensor:
        r = -(za[..., -A:] - TARGET).pow(2).sum(-1)
        return torch.log(two_hot(r, TINY.num_bins, TINY.vmin, TINY.vmax) + 1e-12)


def model(quadratic: bool = False) -> WorldModel:
    torch.manual_seed(0)
    m = WorldModel(TINY, {"state": (5,)}, A).eval()
    if quadratic:
        m.reward_head = QuadraticReward()  # Q heads start at exactly zero, so the return is the reward sum
    return m


def solve(m, cfg, prev_mean, is_first, seed=0, batch=1):
    obs = {"state": torch.randn(batch, 5, generator=torch.Generator().manual_seed(123))}
    noise = sample_noise(cfg, batch, A, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return plan(m, obs, prev_mean, torch.tensor([is_first] * batch), *noise, cfg, discount=0.9)


def test_outputs_are_bounded_and_shaped():
    cfg = PlannerConfig(samples=64, policy_samples=8, elites=8, iterations=3, horizon=4)
    action, mean, std = solve(model(), cfg, torch.zeros(2, 4, A), True, batch=2)
    assert action.shape == (2, A) and mean.shape == (2, 4, A) and std.shape == (2, A)
    assert action.abs().max() <= 1.0 and mean.abs().max() <= 1.0
    assert (std >= cfg.min_std - 1e-6).all() and (std <= cfg.max_std + 1e-6).all()


def test_finds_the_best_action_sequence():
    cfg = PlannerConfig(samples=256, policy_samples=8, elites=32, iterations=6, horizon=3)
    action, mean, std = solve(model(quadratic=True), cfg, torch.zeros(1, 3, A), True)
    assert (action[0] - TARGET).abs().max() < 0.15
    assert (mean[0] - TARGET).abs().max() < 0.1
    # one iteration from the maximal std is far worse: the iterations do the work
    rough, _, _ = solve(model(quadratic=True), dataclasses.replace(cfg, iterations=1), torch.zeros(1, 3, A), True)
    assert (rough[0] - TARGET).norm() > (action[0] - TARGET).norm()


def test_same_noise_same_plan_and_noise_matters():
    cfg = PlannerConfig(samples=64, policy_samples=4, elites=8, iterations=2)
    m = model()
    a1, m1, _ = solve(m, cfg, torch.zeros(1, 3, A), True, seed=1)
    a2, m2, _ = solve(m, cfg, torch.zeros(1, 3, A), True, seed=1)
    a3, _, _ = solve(m, cfg, torch.zeros(1, 3, A), True, seed=2)
    assert torch.equal(a1, a2) and torch.equal(m1, m2)
    assert not torch.equal(a1, a3)


def test_episode_start_ignores_the_previous_plan():
    cfg = PlannerConfig(samples=64, policy_samples=4, elites=8, iterations=2)
    m = model(quadratic=True)
    a1, _, _ = solve(m, cfg, torch.zeros(1, 3, A), True)
    a2, _, _ = solve(m, cfg, torch.full((1, 3, A), 0.7), True)
    assert torch.equal(a1, a2)


def test_warm_start_shifts_the_previous_plan_by_one_step():
    cfg = PlannerConfig(samples=64, policy_samples=4, elites=8, iterations=2)
    m = model(quadratic=True)
    prev = torch.rand(1, 3, A) * 2 - 1
    changed_first = prev.clone()
    changed_first[:, 0] = -prev[:, 0]  # step 0 of the old plan is in the past: it must not matter
    a1, _, _ = solve(m, cfg, prev, False)
    a2, _, _ = solve(m, cfg, changed_first, False)
    assert torch.equal(a1, a2)
    changed_second = prev.clone()
    changed_second[:, 1] = -prev[:, 1]  # step 1 becomes the new step 0
    a3, _, _ = solve(m, cfg, changed_second, False)
    assert not torch.equal(a1, a3)


def test_warm_start_from_a_good_plan_helps():
    cfg = PlannerConfig(samples=32, policy_samples=0, elites=4, iterations=1, max_std=0.3)
    m = model(quadratic=True)
    good = TARGET.expand(1, 3, A).clone()
    warm = [(solve(m, cfg, good, False, seed=s)[0][0] - TARGET).norm() for s in range(10)]
    cold = [(solve(m, cfg, good, True, seed=s)[0][0] - TARGET).norm() for s in range(10)]
    assert sum(warm) < 0.5 * sum(cold)


def test_pessimistic_value_changes_the_plan():
    cfg = PlannerConfig(samples=64, policy_samples=4, elites=8, iterations=2)
    m = model()
    with torch.no_grad():  # make the Q heads disagree
        for w in m.qs.weights:
            w.normal_(0, 0.5)
    a1, _, _ = solve(m, cfg, torch.zeros(1, 3, A), True)
    a2, _, _ = solve(m, dataclasses.replace(cfg, value_std_coef=2.0), torch.zeros(1, 3, A), True)
    assert not torch.equal(a1, a2)


def test_bad_planner_config_is_refused():
    from robot_rl.agent_config import check_planner

    with pytest.raises(ValueError, match="elites"):
        check_planner(PlannerConfig(samples=16, policy_samples=4, elites=32))
    with pytest.raises(ValueError, match="policy_samples"):
        check_planner(PlannerConfig(samples=16, policy_samples=16, elites=4))


def test_large_action_spaces_get_two_more_iterations_as_in_official_tdmpc2():
    from robot_rl.planner import solve_iterations

    cfg = PlannerConfig(samples=32, policy_samples=4, elites=4, iterations=1)
    assert [solve_iterations(cfg, a) for a in (8, 19, 20, 39)] == [1, 1, 3, 3]
    assert sample_noise(cfg, 1, 19)[0].shape[0] == 1 and sample_noise(cfg, 1, 20)[0].shape[0] == 3
    torch.manual_seed(0)
    big = WorldModel(TINY, {"state": (5,)}, 20).eval()
    obs = {"state": torch.randn(1, 5)}
    noise = sample_noise(cfg, 1, 20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        action, _, _ = plan(big, obs, torch.zeros(1, 3, 20), torch.tensor([True]), *noise, cfg, 0.9)
        last_changed = noise[0].clone()
        last_changed[2] = torch.randn_like(last_changed[2])  # the third iteration's samples
        moved, _, _ = plan(big, obs, torch.zeros(1, 3, 20), torch.tensor([True]), last_changed, *noise[1:], cfg, 0.9)
        assert not torch.equal(action, moved)  # the extra iterations run and shape the action
        with pytest.raises(ValueError, match="3"):  # noise for the configured count alone is refused
            plan(big, obs, torch.zeros(1, 3, 20), torch.tensor([True]), noise[0][:1], *noise[1:], cfg, 0.9)


def test_episodic_value_stops_at_a_predicted_termination():
    """TD-MPC2's episodic planning: rewards after a predicted termination and the final value count for nothing."""
    from robot_rl.planner import trajectory_value

    torch.manual_seed(0)
    m = WorldModel(dataclasses.replace(TINY, episodic=True), {"state": (5,)}, A).eval()
    m.reward_head = QuadraticReward()
    with torch.no_grad():
        m.qs.weights[-1].normal_(0.0, 0.5)  # a non-zero final value, so cutting it shows
    z = m.encode({"state": torch.randn(2, 4, 5)})
    actions = torch.rand(2, 4, 3, A) * 2 - 1
    eps = torch.zeros(2, 4, A)
    rewards = -(actions - TARGET).pow(2).sum(-1)  # (B, S, H): what QuadraticReward decodes to
    out_bias = m.termination_head[-1].bias
    with torch.no_grad():
        out_bias.fill_(50.0)    # terminates after the first step: only the first reward counts
        ended = trajectory_value(m, z, actions, eps, 0.9, 0.0)
        out_bias.fill_(-50.0)   # never terminates: every reward and the discounted final value
        running = trajectory_value(m, z, actions, eps, 0.9, 0.0)
    torch.testing.assert_close(ended, rewards[..., 0], atol=0.02, rtol=0)  # two-hot decoding tolerance
    partial = rewards[..., 0] + 0.9 * rewards[..., 1] + 0.81 * rewards[..., 2]
    assert ((running - partial).abs() > 1e-3).any()  # the final value is there
    assert not torch.allclose(running, ended)
