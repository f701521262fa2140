
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from robot_rl.agent import ENTROPY_BONUS, TDMPC2
from robot_rl.agent_config import AgentConfig, PlannerConfig, heuristic_discount, model_dims
from robot_rl.layers import param_count
from robot_rl.overrides import ConfigError
from robot_rl.replay_buffer import Batch, ReplayBuffer

TINY = dict(model_size="1M", enc_dim=32, mlp_dim=64, latent_dim=32, batch_size=64,
            planner=PlannerConfig(samples=32, policy_samples=4, elites=4, iterations=2))


def filled_buffer(obs_dim=4, action_dim=2, episodes=6, length=30, seed=0):
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(10_000, {"state": ((obs_dim,), "float32")}, action_dim, horizon=3, seed=seed)
    for _ in range(episodes):
        x = rng.normal(size=obs_dim).astype(np.float32)
        buf.start_episode({"state": x})
        for _ in range(length):
            a = rng.uniform(-1, 1, action_dim).astype(np.float32)
            x = (0.9 * x + 0.5 * np.resize(a, obs_dim)).astype(np.float32)  # a learnable linear system
            buf.add({"state": x}, a, float(-np.abs(x).sum()))
    return buf


def test_presets_have_the_papers_sizes():
    for size, millions in [("1M", 1), ("5M", 5), ("19M", 19), ("48M", 48)]:
        agent_cfg = AgentConfig(model_size=size)
        from robot_rl.world_model import WorldModel
        m = WorldModel(agent_cfg, {"state": (39,)}, 4)
        n = sum(p.numel() for n_, p in m.named_parameters() if not n_.startswith("target_"))
        assert 0.6 * millions < n / 1e6 < 1.5 * millions, (size, n)
    assert model_dims(AgentConfig(model_size="5M")).num_q == 5


def test_discount_heuristic():
    cfg = AgentConfig()
    assert heuristic_discount(50, cfg) == 0.95            # clipped at the minimum
    assert abs(heuristic_discount(500, cfg) - 0.99) < 1e-9  # (100 - 1) / 100
    assert heuristic_discount(10_000, cfg) == 0.995        # clipped at the maximum


def test_losses_decrease_on_a_fixed_batch():
    torch.manual_seed(0)
    agent = TDMPC2(AgentConfig(**TINY), {"state": (4,)}, 2, episode_length=30)
    batch = filled_buffer().sample(64)
    first = agent.update(batch)
    for _ in range(150):
        last = agent.update(batch)
    for key in ("consistency_loss", "reward_loss", "value_loss"):
        assert last[key] < 0.5 * first[key], (key, first[key], last[key])
    assert torch.isfinite(last["pi_loss"])


def test_target_q_follows_by_polyak_averaging():
    torch.manual_seed(0)
    agent = TDMPC2(AgentConfig(**TINY), {"state": (4,)}, 2, episode_length=30)
    before = [p.clone() for p in agent.model.target_qs.parameters()]
    agent.update(filled_buffer().sample(64))
    for old, target, online in zip(before, agent.model.target_qs.parameters(), agent.model.qs.parameters()):
        torch.testing.assert_close(target, old + 0.01 * (online - old))


def test_act_in_bounds_for_planner_and_policy():
    torch.manual_seed(0)
    obs = {"state": np.ones(4, np.float32)}
    for plan in (True, False):
        cfg = AgentConfig(**{**TINY, "planner": PlannerConfig(plan=plan, samples=32, policy_samples=4, elites=4,
                                                             iterations=2)})
        agent = TDMPC2(cfg, {"state": (4,)}, 2, episode_length=30)
        for first in (True, False, False):
            for eval_mode in (True, False):
                a = agent.act(obs, first, eval_mode)
                assert a.shape == (2,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)
    # deterministic policy in eval mode
    assert np.array_equal(agent.act(obs, True, True), agent.act(obs, True, True))


def test_pixel_and_state_pixel_encoders():
    torch.manual_seed(0)
    spec = {"state": (4,), "pixels": (3, 64, 64)}
    agent = TDMPC2(AgentConfig(**TINY), spec, 2, episode_length=30)
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(1000, {"state": ((4,), "float32"), "pixels": ((3, 64, 64), "uint8")}, 2, horizon=3)
    for _ in range(2):
        buf.start_episode({"state": np.zeros(4, np.float32), "pixels": np.zeros((3, 64, 64), np.uint8)})
        for _ in range(10):
            buf.add({"state": rng.normal(size=4).astype(np.float32),
                     "pixels": rng.integers(0, 255, (3, 64, 64), dtype=np.uint8)}, rng.uniform(-1, 1, 2), 0.1)
    info = agent.update(buf.sample(8))
    assert torch.isfinite(info["total_loss"])
    a = agent.act({"state": np.zeros(4, np.float32), "pixels": np.zeros((3, 64, 64), np.uint8)}, True)
    assert a.shape == (2,)
    assert param_count(agent.model.encoder.trunks["pixels"]) > 0


def test_update_returns_detached_0d_tensors_on_the_device():
    torch.manual_seed(0)
    agent = TDMPC2(AgentConfig(**TINY), {"state": (4,)}, 2, episode_length=30)
    info = agent.update(filled_buffer().sample(64))
    assert {"consistency_loss", "reward_loss", "value_loss", "pi_loss", "entropy", "grad_norm"} <= set(info)
    for key, value in info.items():
        assert isinstance(value, torch.Tensor) and value.shape == () and not value.requires_grad, key
        assert value.device == agent.device
    scale = info["pi_scale"].clone()
    agent.update(filled_buffer().sample(64))
    assert torch.equal(info["pi_scale"], scale)  # a copy, not a view of the running state


def test_entropy_bonus_is_tdmpc2s_scaled_gaussian_form_by_default():
    """TD-MPC2's scaled_entropy: -(log-prob of the pre-tanh Gaussian) x action dim; the old form was the
    squashed action's -log-prob, unscaled. Checked against torch.distributions."""
    torch.manual_seed(0)
    a_dim = 8
    agent = TDMPC2(AgentConfig(**TINY), {"state": (4,)}, a_dim, episode_length=30)
    assert agent.cfg.entropy == "scaled_gaussian"
    m = agent.model
    z, eps = torch.randn(16, 32), torch.randn(16, a_dim)
    sample = m.pi_sample(z, eps)
    mean, log_std = m.pi_head(z).chunk(2, dim=-1)
    std = (m.log_std_min + 0.5 * m.log_std_dif * (torch.tanh(log_std) + 1)).exp()
    u = mean + eps * std
    gaussian = Normal(mean, std).log_prob(u).sum(-1)
    squashed = TransformedDistribution(Normal(mean, std), [TanhTransform()]).log_prob(torch.tanh(u)).sum(-1)
    torch.testing.assert_close(ENTROPY_BONUS["scaled_gaussian"](sample), -a_dim * gaussian, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ENTROPY_BONUS["squashed"](sample), -squashed, rtol=1e-3, atol=1e-2)
    torch.testing.assert_close(sample.action, torch.tanh(u))
    # the policy gradient of the default bonus w.r.t. the std is action-dim times the plain Gaussian one
    grads = []
    for bonus in (ENTROPY_BONUS["scaled_gaussian"], lambda s: -s.gaussian_log_prob):
        m.pi_head.zero_grad()
        bonus(m.pi_sample(z, eps)).sum().backward()
        grads.append(m.pi_head[-1].bias.grad[a_dim:].clone())  # the log-std outputs
    torch.testing.assert_close(grads[0], a_dim * grads[1])


def test_entropy_form_is_validated():
    with pytest.raises(ConfigError, match="entropy='nats'"):
        TDMPC2(AgentConfig(**{**TINY, "entropy": "nats"}), {"state": (4,)}, 2, episode_length=30)


def episodic_batch(batch: int = 64, seed: int = 0) -> Batch:
    """Sub-trajectories (H=3) of filled_buffer's linear system, x' = 0.9 x + 0.5 a (4 states, 2 actions
    repeated), where a step terminates when it takes the first state coordinate above 1."""
    g = torch.Generator().manual_seed(seed)
    x = [torch.randn(batch, 4, generator=g)]
    action = torch.rand(3, batch, 2, generator=g) * 2 - 1
    for t in range(3):
        x.append(0.9 * x[-1] + 0.5 * action[t].repeat(1, 2))
    obs = torch.stack(x)
    return Batch(obs={"state": obs}, action=action, reward=-obs[1:].abs().sum(-1),
                 terminated=(obs[1:, :, 0] > 1.0).float())


def test_episodic_td_target_does_not_bootstrap_past_a_termination():
    torch.manual_seed(0)
    agent = TDMPC2(AgentConfig(**{**TINY, "episodic": True}), {"state": (4,)}, 2, episode_length=30)
    m = agent.model
    with torch.no_grad():  # a non-zero Q so that bootstrapping shows
        m.target_qs.biases[-1].normal_()
        next_z, reward = m.encode({"state": torch.randn(3, 8, 4)}), torch.randn(3, 8)
        terminated = torch.zeros(3, 8)
        terminated[1, :4] = 1.0
        torch.manual_seed(1)
        target = agent._td_target(next_z, reward, terminated)
        torch.manual_seed(1)
        bootstrapped = agent._td_target(next_z, reward, torch.zeros(3, 8))
    torch.testing.assert_close(target[1, :4], reward[1, :4])  # terminal: the reward alone
    torch.testing.assert_close(target[1, 4:], bootstrapped[1, 4:])
    assert (bootstrapped[1, :4] - reward[1, :4]).abs().min() > 1e-3


def test_episodic_termination_head_learns_and_is_absent_otherwise():
    torch.manual_seed(0)
    batch = episodic_batch()
    agent = TDMPC2(AgentConfig(**{**TINY, "episodic": True}), {"state": (4,)}, 2, episode_length=30)
    rate = batch.terminated.mean()
    constant = F.binary_cross_entropy(rate, rate)  # the loss of predicting the termination rate everywhere
    for _ in range(60):
        loss = agent.update(batch)["termination_loss"]
    assert loss < 0.8 * constant, (float(constant), float(loss))
    # without `episodic`: no head, no termination loss, terminations folded into truncation
    plain = TDMPC2(AgentConfig(**TINY), {"state": (4,)}, 2, episode_length=30)
    assert plain.model.termination_head is None and "termination_loss" not in plain.update(batch)
    assert not any("termination" in k for k in plain.model.state_dict())
    with pytest.raises(ValueError, match="not episodic"):
        plain.model.termination(torch.zeros(1, 32))


def test_td_target_and_policy_loss_evaluate_two_random_q_heads_only():
    torch.manual_seed(0)
    agent = TDMPC2(AgentConfig(**{**TINY, "num_q": 5}), {"state": (4,)}, 2, episode_length=30)
    m = agent.model
    rows = []
    m.target_qs.register_forward_hook(lambda mod, args, kwargs, out: rows.append(out.shape[0]), with_kwargs=True)
    m.qs.register_forward_hook(lambda mod, args, kwargs, out: rows.append(out.shape[0]), with_kwargs=True)
    agent.update(filled_buffer().sample(64))
    assert rows == [2, 5, 2]  # TD target (target net), value loss (every head), policy loss
    pairs = {tuple(sorted(agent._q_pair().tolist())) for _ in range(200)}
    assert all(len(set(p)) == 2 and max(p) < 5 for p in pairs) and len(pairs) == 10  # all C(5, 2) pairs occur
    # the pair's values are exactly those heads of the full ensemble
    z, a = torch.randn(7, 32), torch.rand(7, 2)
    heads = torch.tensor([3, 1])
    with torch.no_grad():
        torch.testing.assert_close(m.q_values(z, a, heads=heads), m.q_values(z, a)[heads])
    assert TDMPC2(AgentConfig(**TINY), {"state": (4,)}, 2, episode_length=30)._q_pair() is None  # 2 heads: both
