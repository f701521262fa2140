"""hardware/policy_runtime.py: the planner's warm start is carried between calls and reset at an episode start,
noise is seeded and distributed as robot_rl.planner.sample_noise draws it, the runtime runs without torch, and
actions map to joint targets as sim/action_mapping.py does."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from hardware.bundle import BundleError
from hardware.policy_runtime import open_bundle, planner_noise
from robot_rl.agent_config import PlannerConfig
from robot_rl.planner import sample_noise
from sim.action_mapping import action_to_targets
from tests.hardware.exported_bundle import make_bundle


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.set_num_threads(1)
    return make_bundle(tmp_path_factory.mktemp("export"))[0]


def state(seed):
    return np.random.default_rng(seed).standard_normal(24).astype(np.float32)


def test_warm_start_is_carried_and_reset_at_episode_start(folder):
    run = open_bundle(folder, "planner", seed=3).runtime
    assert np.all(run.plan == 0)
    run.act(state(0), first=True)
    carried = run.plan.copy()
    assert np.abs(carried).max() > 0, "the plan was not kept after a solve"
    run.act(state(1))
    assert not np.allclose(run.plan, carried)

    # Same noise and observation, with and without the warm start: only the previous plan differs.
    fresh, warm = open_bundle(folder, "planner", seed=5).runtime, open_bundle(folder, "planner", seed=5).runtime
    warm.plan = carried.copy()
    warm.first = False
    a_fresh, a_warm = fresh.act(state(2), first=True), warm.act(state(2))
    assert not np.allclose(a_fresh, a_warm), "the previous plan had no effect"
    # After reset() the next call ignores the carried plan: identical to a fresh runtime.
    again = open_bundle(folder, "planner", seed=5).runtime
    again.plan = carried.copy()
    again.reset()
    np.testing.assert_array_equal(again.act(state(2)), a_fresh)
    assert not again.first


def test_seeded_noise_is_reproducible_and_distributed_as_sample_noise():
    cfg = PlannerConfig(samples=256, iterations=2, horizon=3, policy_samples=16, elites=512 - 256)
    shapes = {"noise": (2, 1, 256, 4, 8), "policy_noise": (1, 16, 3, 8), "select_noise": (1, 256)}
    a = planner_noise(np.random.default_rng(1), shapes)
    b = planner_noise(np.random.default_rng(1), shapes)
    ref = dict(zip(["noise", "policy_noise", "select_noise"],
                   sample_noise(cfg, 1, 8, generator=torch.Generator().manual_seed(0))))
    for key in shapes:
        np.testing.assert_array_equal(a[key], b[key])
        assert a[key].shape == tuple(ref[key].shape) and a[key].dtype == np.float32
    big = planner_noise(np.random.default_rng(2), {**shapes, "select_noise": (1, 200_000)})["select_noise"]
    # Gumbel(0, 1): mean = Euler-Mascheroni constant, std = pi / sqrt(6)
    assert abs(big.mean() - 0.5772) < 0.01 and abs(big.std() - np.pi / np.sqrt(6)) < 0.01
    assert abs(a["noise"].mean()) < 0.02 and abs(a["noise"].std() - 1) < 0.02


def test_policy_io_and_targets_follow_sim_action_mapping(folder):
    loaded = open_bundle(folder, "policy")
    io, b = loaded.io, loaded.bundle
    q = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.8])
    obs = io.state(q, np.zeros(7), 0.04, np.array([0.5, 0.0, 0.3]), None)
    assert obs.shape == (24,) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[:7], q, atol=1e-7)
    action = loaded.runtime.act(obs)
    assert action.shape == (8,) and np.all(np.abs(action) <= 1)
    targets, gap = io.targets(action, q)
    ref_targets, ref_gap = action_to_targets(action, q, np.asarray(b.raw["position_lower"]),
                                             np.asarray(b.raw["position_upper"]), b.actions.max_joint_step,
                                             b.gripper_max_width)
    np.testing.assert_allclose(targets, ref_targets)
    assert gap == pytest.approx(ref_gap)


def test_bad_inputs_are_refused(folder):
    run = open_bundle(folder, "planner").runtime
    with pytest.raises(BundleError, match=r"state: shape \(23,\), the policy takes \(24,\)"):
        run.act(np.zeros(23, np.float32))
    with pytest.raises(BundleError, match="takes 'state'"):
        run.act(None)
    with pytest.raises(BundleError, match="mode='mppi'"):
        open_bundle(folder, "mppi")


def test_runtime_runs_without_torch(folder):
    code = ("import sys, numpy as np; from hardware.policy_runtime import open_bundle; "
            f"r = open_bundle({str(folder)!r}, 'planner').runtime; a = r.act(np.zeros(24, np.float32), first=True); "
            "assert a.shape == (8,); print('torch' in sys.modules)")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_tool_point_bundle_with_action_history_drives_as_the_simulator(tmp_path):
    """panda-push exported with action=ee and action_history=2: bundle.json declares both, and the robot computer
    (open_bundle's PolicyIO, from bundle.json alone) builds the simulator's observations and joint targets while the
    bundle's own policy acts."""
    import gymnasium as gym

    import sim  # noqa: F401

    folder, _ = make_bundle(tmp_path, task="panda-push", env_kwargs={"action": "ee", "action_history": 2})
    loaded = open_bundle(folder, "policy")
    b, io = loaded.bundle, loaded.io
    assert b.raw["action"]["space"] == "ee" and b.action_dim == 4 and b.action_history == 2
    assert b.state_layout[-1] == ("last_actions", 8)
    box = b.safety.workspace   # the ee space's box + 2 cm guards the commands
    assert box is not None and np.allclose(box.lower, np.array(b.raw["action"]["workspace_low"]) - 0.02)
    env = gym.make("robot_rl/panda-push-v0", action="ee", action_history=2)
    u = env.unwrapped
    obs, _ = env.reset(seed=4)
    io.reset()
    previous = u.last_joint_targets.copy()
    for _ in range(6):
        p = u.physics
        state = io.state(p.arm_qpos(), p.arm_qvel(), p.gripper_width(), u.goal, p.object_pose())
        np.testing.assert_allclose(state, obs, atol=2e-6)
        action = loaded.runtime.act(state)
        previous, gap = io.targets(action, previous)
        obs, *_ = env.step(action)
        np.testing.assert_allclose(previous, u.last_joint_targets, atol=1e-8)
        assert gap == pytest.approx(u.last_gripper_target)
    env.close()
