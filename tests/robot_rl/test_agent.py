import numpy as np
import torch

from robot_rl.agent import TDMPC2
from robot_rl.agent_config import AgentConfig, PlannerConfig, heuristic_discount, model_dims
from robot_rl.layers import param_count
from robot_rl.replay_buffer import ReplayBuffer

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
    assert np.isfinite(last["pi_loss"])


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
    assert np.isfinite(info["total_loss"])
    a = agent.act({"state": np.zeros(4, np.float32), "pixels": np.zeros((3, 64, 64), np.uint8)}, True)
    assert a.shape == (2,)
    assert param_count(agent.model.encoder.trunks["pixels"]) > 0
