"""MoDem and MoDem-V2 on real scripted-expert demonstrations (panda-reach-sparse) with a tiny TD-MPC2 model:
the oversampling schedule of the actual batch sampler, behaviour cloning on held-out demo steps, policy
seeding, agency handover, exploration centering and the pessimistic value."""
import dataclasses

import numpy as np
import pytest
import torch

from robot_rl.agent import TDMPC2
from robot_rl.agent_config import AgentConfig, PlannerConfig
from robot_rl.demo_dataset import load_demos
from robot_rl.envs import EnvInfo
from robot_rl.modem import AgencyHandover, Modem, ModemSeeding, policy_action_error
from robot_rl.modem_config import ModemConfig
from robot_rl.planner import plan, sample_noise, trajectory_value
from robot_rl.replay_buffer import ReplayBuffer

TINY = AgentConfig(model_size="1M", enc_dim=64, mlp_dim=64, latent_dim=32, num_q=3, batch_size=64,
                   planner=PlannerConfig(samples=32, policy_samples=4, elites=8, iterations=2))
TASK = "panda-reach-sparse"


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    from robot_rl.demos import Config, collect
    from robot_rl.demo_dataset import save_demos

    torch.set_num_threads(1)
    meta, episodes = collect(Config(task=TASK, episodes=5, seed=3, progress=False))
    path = tmp_path_factory.mktemp("demos") / "reach"
    save_demos(path, meta, episodes)
    return path


def env_info(meta) -> EnvInfo:
    return EnvInfo(task=TASK, obs_type="state", obs_spec={"state": ((meta.state_dim,), "float32")},
                   action_dim=meta.action_dim, action_low=[-1.0] * meta.action_dim,
                   action_high=[1.0] * meta.action_dim, episode_length=40, control_hz=20.0,
                   obs_layout=[tuple(x) for x in meta.obs_layout])


def make_modem(demos, cfg=ModemConfig(), seed_steps=100, agent_cfg=TINY):
    meta, _ = load_demos(demos)
    torch.manual_seed(0)
    agent = TDMPC2(agent_cfg, {"state": (meta.state_dim,)}, meta.action_dim, 40)
    return Modem(cfg, demos, agent, env_info(meta), seed=0, seed_steps=seed_steps)


def test_oversampling_schedule_draws_the_scheduled_fractions(demos):
    cfg = ModemConfig(demo_ratio_start=0.75, demo_ratio_end=0.25, demo_ratio_steps=1000)
    modem = make_modem(demos, cfg, seed_steps=100)
    d = modem.demos.obs_spec["state"][0][0]
    interaction = ReplayBuffer(1000, {"state": ((d,), "float32")}, 8, TINY.horizon, seed=1)
    sampler = modem.sampler(interaction, torch.device("cpu"))
    for _ in range(5):  # interaction data tagged by reward -5 (demo rewards are 0 or 1)
        interaction.add_episode({"state": np.zeros((41, d), np.float32)}, np.zeros((40, 8), np.float32),
                                np.full(40, -5.0, np.float32))
    for step, expected in [(0, 0.75), (100, 0.75), (600, 0.5), (850, 0.375), (1100, 0.25), (50_000, 0.25)]:
        assert sampler.demo_ratio(step) == pytest.approx(expected)
        fracs = []
        for _ in range(40):
            batch = sampler.sample(64, step)
            assert batch.action.shape == (TINY.horizon, 64, 8)
            fracs.append(float((batch.reward[0] != -5.0).float().mean()))
        # 2560 draws: the binomial standard error is <= 0.01
        assert np.mean(fracs) == pytest.approx(expected, abs=0.035), (step, np.mean(fracs))
        assert np.std(fracs) > 0 or expected in (0.0, 1.0)


def test_behaviour_cloning_lowers_action_error_on_held_out_demo_steps(demos):
    _, episodes = load_demos(demos)
    modem = make_modem(demos, ModemConfig(episodes=4))  # trains on the first 4, the 5th is held out
    assert modem.num_demos == 4
    held_out = episodes[4:]
    before = policy_action_error(modem.agent, held_out, ["state"])
    losses = modem.pretrain_policy(steps=300, batch_size=64)
    after = policy_action_error(modem.agent, held_out, ["state"])
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    assert after < 0.5 * before, (before, after)
    # the zero action (what an untrained tanh policy is near) is much worse than the clone
    zero = float(np.mean([np.mean(e.action ** 2) for e in held_out]))
    assert after < 0.6 * zero, (after, zero)


def perturb(agent) -> None:
    """Move the live agent's policy away from the clone (stands in for TD updates after seeding)."""
    with torch.no_grad():
        for p in agent.model.pi_head.parameters():
            p.add_(0.5 * torch.randn_like(p))


def test_seeding_uses_the_cloned_policy_with_truncated_normal_noise(demos):
    assert ModemConfig().seed_noise == 0.05 and ModemConfig().seed_steps == 5000  # MoDem's defaults
    modem = make_modem(demos, ModemConfig(seed_noise=0.1))
    modem.pretrain_policy(steps=50, batch_size=32)
    _, episodes = load_demos(demos)
    obs = {"state": np.repeat(episodes[0].state[5][None], 2000, axis=0)}
    with torch.no_grad():
        _, mean, _ = modem.agent.model.pi(modem.agent.model.encode(modem.agent.obs_tensors({"state": obs["state"][0]})))
    mean = mean[0].numpy()
    perturb(modem.agent)  # seeding acts with the frozen clone, not the live policy
    seeding = modem.strategy(interaction=None).current(0)
    assert isinstance(seeding, ModemSeeding)
    actions = seeding.act(obs, np.ones(2000, bool), np.arange(2000), 0)
    inside = np.abs(mean) < 0.7  # away from the clip at +-1
    dev = actions[:, inside] - mean[inside]
    assert abs(dev.mean()) < 0.01
    assert np.abs(dev).max() <= 0.2 + 1e-6            # cut at 2 std
    assert dev.std() == pytest.approx(0.1 * 0.8796, abs=0.006)  # the std of a normal truncated at +-2 std


class ConstantActing:
    """Stands in for the planner: a recognisable action."""

    def act(self, obs, first, envs, step):
        return np.full((len(envs), 8), 0.9, np.float32)

    def state(self):
        return {}

    def load_state(self, state):
        pass


def test_agency_handover_is_decided_per_step_with_the_frozen_clone(demos):
    modem = make_modem(demos, ModemConfig(handover_steps=1000), seed_steps=200)
    modem.pretrain_policy(steps=20, batch_size=32)
    schedule = modem.strategy(ConstantActing())
    handover = schedule.current(200)
    assert isinstance(handover, AgencyHandover) and isinstance(schedule.current(199), ModemSeeding)
    for step, share in [(200, 0.0), (450, 0.25), (700, 0.5), (1200, 1.0), (5000, 1.0)]:
        assert handover.share(step) == pytest.approx(share)
    obs = {"state": np.repeat(load_demos(demos)[1][0].state[:1], 400, axis=0)}
    cloned = modem.cloned_policy()(obs)
    perturb(modem.agent)
    for step, share in [(200, 0.0), (450, 0.25), (950, 0.75), (1200, 1.0)]:
        actions = schedule.act(obs, np.zeros(400, bool), np.arange(400), step)
        by_planner = handover.last_by_planner
        assert by_planner.mean() == pytest.approx(share, abs=0.07), step
        np.testing.assert_array_equal(actions[by_planner], np.float32(0.9))
        np.testing.assert_allclose(actions[~by_planner], cloned[~by_planner], atol=1e-6)  # the frozen clone
    # per step, not per episode: the same environments switch between consecutive steps
    one = {"state": obs["state"][:1]}
    chosen = [bool(handover.act(one, np.zeros(1, bool), np.arange(1), 700)[0, 0] == np.float32(0.9))
              for _ in range(60)]
    assert 10 < sum(chosen) < 50
    assert modem.strategy(ConstantActing()).current(200) is not handover  # a fresh schedule each call
    assert not isinstance(make_modem(demos, ModemConfig(handover_steps=0)).strategy(ConstantActing()).current(200),
                          AgencyHandover)  # off: the planner acts from the start


def test_exploration_centering_keeps_planned_actions_near_the_policy():
    """With a reward that pulls every action to +0.9, the unconstrained planner leaves the policy; centred
    sampling stays within a few `center_std` of the policy's deterministic action."""
    from robot_rl.world_model import WorldModel
    from tests.robot_rl.test_planner import QuadraticReward

    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, enc_dim=32, mlp_dim=32, latent_dim=16)
    model = WorldModel(cfg, {"state": (5,)}, 3).eval()
    model.reward_head = QuadraticReward()
    obs = {"state": torch.randn(16, 5, generator=torch.Generator().manual_seed(1))}
    with torch.no_grad():
        _, policy_action, _ = model.pi(model.encode(obs), torch.zeros(16, 3))
    base = PlannerConfig(samples=128, policy_samples=4, elites=16, iterations=3, horizon=3)
    results = {}
    for center_std in (0.0, 0.05):
        pcfg = dataclasses.replace(base, center_std=center_std)
        noise = sample_noise(pcfg, 16, 3, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            action, mean, std = plan(model, obs, torch.zeros(16, 3, 3), torch.ones(16, dtype=torch.bool), *noise,
                                     pcfg, 0.9)
        results[center_std] = (action - policy_action).abs()
        if center_std:
            assert (std <= center_std + 1e-6).all()  # the exploration noise training adds is small too
    assert results[0.05].max() < 3 * 4 * 0.05        # iterations x 4 sigma at most
    assert results[0.05].mean() < 0.1
    assert results[0.0].mean() > 0.4                 # without centering the planner goes where the reward is


def test_pessimistic_value_lowers_values_where_heads_disagree():
    from robot_rl.world_model import WorldModel

    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, enc_dim=32, mlp_dim=32, latent_dim=16, num_q=5)
    model = WorldModel(cfg, {"state": (5,)}, 3).eval()
    with torch.no_grad():  # heads that disagree: random output layers (they start at zero)
        model.qs.weights[-1].normal_(0.0, 0.5)
    z = model.encode({"state": torch.randn(4, 8, 5)})
    actions = torch.rand(4, 8, 2, 3) * 2 - 1
    eps = torch.zeros(4, 8, 3)
    with torch.no_grad():
        neutral = trajectory_value(model, z, actions, eps, 0.9, 0.0)
        pessimistic = trajectory_value(model, z, actions, eps, 0.9, 1.0)
        a_last = model.pi(model.next(model.next(z, actions[:, :, 0]), actions[:, :, 1]), eps)[0]
        q = model.q_values(model.next(model.next(z, actions[:, :, 0]), actions[:, :, 1]), a_last, dropout=False)
    gap = neutral - pessimistic
    assert (gap > 0).all()
    torch.testing.assert_close(gap, 0.9 ** 2 * q.std(0), rtol=1e-4, atol=1e-5)  # exactly k * std, discounted
    with torch.no_grad():  # identical heads agree: pessimism changes nothing
        for p in (model.qs.weights, model.qs.biases, model.qs.ln_weights, model.qs.ln_biases):
            for w in p:
                w.copy_(w[:1].expand_as(w))
        same = trajectory_value(model, z, actions, eps, 0.9, 0.0)
        torch.testing.assert_close(trajectory_value(model, z, actions, eps, 0.9, 1.0), same)


def test_train_runs_the_three_phases_and_refuses_mismatched_demos(demos, tmp_path, capsys):
    from robot_rl.cli import main

    tiny = ["enc_dim=32", "mlp_dim=32", "latent_dim=16", "num_q=2", "batch_size=16", "planner.samples=16",
            "planner.elites=4", "planner.policy_samples=2", "planner.iterations=1", "eval_every=0",
            "eval_episodes=1", "progress=false", "tensorboard=false", "threads=1", "envs=1"]
    assert main(["train", f"task={TASK}", f"demos={demos}", "steps=80", "seed_steps=40", "modem.bc_steps=20",
                 "modem.handover_steps=20", "planner.center_std=0.1", f"out={tmp_path / 'run'}", *tiny]) == 0
    out = capsys.readouterr().out
    assert "behaviour cloning on 5 demos: 20 steps" in out
    assert (tmp_path / "run" / "agent.pt").exists()
    assert main(["train", "task=panda-push-sparse", f"demos={demos}", "steps=40", f"out={tmp_path / 'bad'}",
                 *tiny]) == 2
    assert "demonstrations are for task 'panda-reach-sparse'; this run trains task 'panda-push-sparse'" in \
        capsys.readouterr().out
    assert main(["train", f"task={TASK}", f"demos={tmp_path / 'none'}", "steps=40", f"out={tmp_path / 'b2'}",
                 *tiny]) == 2
    assert "demonstrations folder not found" in capsys.readouterr().out


def test_frame_stack_wrapper_matches_stacked_demo_frames():
    from robot_rl.envs import make_env
    from robot_rl.frame_stack import stack_frames

    env, info = make_env(TASK, "state+pixels", seed=0, frame_stack=3, render_size=16)
    assert info.obs_spec["pixels"][0] == (9, 16, 16) and info.frame_stack == 3
    assert EnvInfo.from_dict(info.as_dict()).frame_stack == 3
    obs, _ = env.reset(seed=0)
    stacked, raw = [obs["pixels"]], [obs["pixels"][-3:]]
    for _ in range(4):
        obs = env.step(np.full(8, 0.5, np.float32))[0]  # the arm moves, so frames differ
        stacked.append(obs["pixels"])
        raw.append(obs["pixels"][-3:])
    env.close()
    np.testing.assert_array_equal(np.stack(stacked), stack_frames(np.stack(raw), 3))
    assert not np.array_equal(raw[0], raw[-1])
    np.testing.assert_array_equal(stacked[1][:6], np.concatenate([raw[0], raw[0]]))  # first frame repeated


def test_pixel_modem_trains_from_frame_stacked_camera_images(tmp_path, capsys):
    from robot_rl.cli import main

    demos = tmp_path / "pix"
    assert main(["demos", f"task={TASK}", "episodes=2", f"out={demos}", "obs=state+pixels", "progress=false"]) == 0
    assert main(["train", f"task={TASK}", "obs=pixels", "frame_stack=3", f"demos={demos}", "steps=60",
                 "seed_steps=40", "modem.bc_steps=30", "enc_dim=32", "mlp_dim=32", "latent_dim=16", "num_q=2",
                 "num_channels=8", "batch_size=8", "planner.samples=16", "planner.elites=4",
                 "planner.policy_samples=2", "planner.iterations=1", "eval_every=0", "eval_episodes=1",
                 "progress=false", "tensorboard=false", "threads=1", "envs=1", f"out={tmp_path / 'run'}"]) == 0
    out = capsys.readouterr().out
    first, last = map(float, out.split("behaviour cloning on 2 demos: 30 steps, loss ")[1].split()[0:3:2])
    assert last < first
    from robot_rl.checkpoint import load_checkpoint

    payload = load_checkpoint(tmp_path / "run" / "agent.pt")
    assert payload["env"]["obs_spec"]["pixels"]["shape"] == [9, 64, 64] and payload["env"]["frame_stack"] == 3


def test_bc_term_keeps_the_cloned_policy_through_tdmpc2_updates(demos):
    """The policy update alone (Q still untrained) walks the cloned policy away from the demos; with the BC
    term on the batch's demo share it stays close."""
    _, episodes = load_demos(demos)
    errors = {}
    for coef in (0.0, 10.0):
        modem = make_modem(demos, ModemConfig(bc_coef=coef))
        modem.pretrain_policy(steps=200, batch_size=64)
        cloned = policy_action_error(modem.agent, episodes, ["state"])
        torch.manual_seed(1)
        sampler = modem.sampler(modem.demos, torch.device("cpu"))
        for _ in range(60):
            batch = modem.demos.sample(64)
            sampler.last_demo_count = 64
            modem.agent.update(batch)
        errors[coef] = policy_action_error(modem.agent, episodes, ["state"])
    assert errors[10.0] < 0.5 * errors[0.0], (cloned, errors)
    assert errors[10.0] < 2 * cloned + 0.005, (cloned, errors)
