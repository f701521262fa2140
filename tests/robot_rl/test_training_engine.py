"""The training engine: vectorised collection keeps episodes and warm starts apart, the learner takes plain
data, N environments keep the bookkeeping of one, resume with N > 1 is exact, and bad input is refused."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.agent import TDMPC2
from robot_rl.agent_config import AgentConfig, PlannerConfig
from robot_rl.checkpoint import load_checkpoint
from robot_rl.cli import main
from robot_rl.replay_buffer import ReplayBuffer
from robot_rl.training.collector import Collector
from robot_rl.training.env_pool import LocalEnvPool, SubprocessEnvPool, TaskEnvFactory
from robot_rl.training.learner import Learner, load_weights
from robot_rl.training.samplers import UniformSampler
from robot_rl.training.strategies import AgentActing, RandomActing
from robot_rl.training.transitions import Transitions

ROOT = Path(__file__).resolve().parents[2]
TINY = ["task=panda-reach", "model_size=1M", "enc_dim=32", "mlp_dim=32", "latent_dim=16", "batch_size=16",
        "planner.samples=16", "planner.policy_samples=2", "planner.elites=4", "planner.iterations=1",
        "seed_steps=80", "eval_episodes=2", "progress=false", "threads=1", "seed=3", "tensorboard=false"]
SMALL = AgentConfig(model_size="1M", enc_dim=32, mlp_dim=32, latent_dim=16, batch_size=8,
                    planner=PlannerConfig(samples=16, policy_samples=2, elites=4, iterations=1))


class TaggedEnv(gym.Env):
    """Observations say which episode (its reset seed) and which step they belong to; episodes end after a
    seed-dependent number of steps, by termination or by truncation."""

    observation_space = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)})
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        self.tag, self.t = float(seed % 1000), 0
        self.length = 4 + seed % 5
        return self._obs(), {}

    def _obs(self):
        return {"state": np.array([self.tag, self.t, 0.0], np.float32)}

    def step(self, action):
        self.t += 1
        end = self.t >= self.length
        return self._obs(), float(self.t), end and self.length % 2 == 0, end and self.length % 2 == 1, {}


def test_vectorised_episodes_keep_boundaries_and_warm_starts_apart():
    pool = LocalEnvPool(lambda i: TaggedEnv(), 3)
    agent = TDMPC2(SMALL, {"state": (3,)}, 2, 10)
    acting = AgentActing(agent, 3)
    calls = []
    act_batch = agent.act_batch

    def recording(obs, first, prev_mean, eval_mode=False):
        action, next_mean = act_batch(obs, first, prev_mean, eval_mode)
        calls.append((first.clone(), prev_mean.clone(), next_mean.clone()))
        return action, next_mean

    agent.act_batch = recording
    collector = Collector(pool, acting, lambda e: 100 + e, ["state"], 2)
    blocks, finished = [], []
    for step in range(30):
        t, done, _ = collector.step(step)
        blocks.append(t)
        finished += done
    # Warm starts: each environment's plan comes back to it, never to another environment.
    last_plan: dict[int, torch.Tensor] = {}
    for (first, prev, nxt) in calls:  # all 3 environments run in every call, so row = environment
        assert len(first) == 3
        for row in range(len(first)):
            if not first[row] and row in last_plan:
                torch.testing.assert_close(prev[row], last_plan[row])
            last_plan[row] = nxt[row]
    # Entries: each episode's observations carry its own tag and count up from 0 without a gap.
    everything = Transitions.concat(blocks)
    for e in np.unique(everything.episode):
        rows = everything.episode == e
        tags, steps = everything.obs["state"][rows, 0], everything.obs["state"][rows, 1]
        assert (tags == (100 + e) % 1000).all()
        np.testing.assert_array_equal(steps, np.arange(rows.sum()))
        assert everything.first[rows][0] and not everything.first[rows][1:].any()
    assert len(finished) >= 10 and {s.env for s in finished} == {0, 1, 2}
    for s in finished:
        length = 4 + (100 + s.episode) % 5
        assert s.steps == length and s.terminated == (length % 2 == 0)
    # The learner's buffer: sampled sub-trajectories stay inside one episode; terminal flags where they ended.
    buffer = ReplayBuffer(10_000, {"state": ((3,), "float32")}, 2, horizon=3, seed=0)
    learner = Learner(agent, buffer, UniformSampler(buffer, torch.device("cpu")))
    for b in blocks:
        learner.ingest(b)
    batch = buffer.sample(512)
    obs = batch.obs["state"].numpy()
    assert (obs[:, :, 0] == obs[:1, :, 0]).all()
    assert (np.diff(obs[:, :, 1], axis=0) == 1).all()
    term = batch.terminated.numpy().astype(bool)
    lengths = 4 + (obs[0, :, 0] - 100) % 5  # tag = 100 + episode (< 1000 here)
    expect = (obs[1:, :, 1] == lengths) & (lengths % 2 == 0)
    np.testing.assert_array_equal(term, expect)


def test_collector_and_learner_exchange_plain_data_through_bytes():
    pool = LocalEnvPool(lambda i: TaggedEnv(), 2)
    collector = Collector(pool, RandomActing(2, seed=0), lambda e: 7 + e, ["state"], 2)
    blocks = [collector.step(i)[0] for i in range(25)]
    wire = [Transitions.from_bytes(b.to_bytes()) for b in blocks]
    for a, b in zip(blocks, wire):
        for name in ("episode", "first", "action", "reward", "terminated", "last"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        np.testing.assert_array_equal(a.obs["state"], b.obs["state"])
    torch.manual_seed(0)
    agent = TDMPC2(SMALL, {"state": (3,)}, 2, 10)
    buffer = ReplayBuffer(1000, {"state": ((3,), "float32")}, 2, horizon=3, seed=0)
    learner = Learner(agent, buffer, UniformSampler(buffer, torch.device("cpu")))
    assert sum(learner.ingest(t) for t in wire) >= 4
    before = {k: v.clone() for k, v in agent.model.state_dict().items()}
    learner.update(3, step=0)
    assert learner.updates == 3 and {"consistency_loss", "value_loss"} <= set(learner.logged_metrics())
    assert any(not torch.equal(before[k], v) for k, v in agent.model.state_dict().items())
    # weights out: an actor elsewhere loads them and acts like the learner's agent
    actor = TDMPC2(SMALL, {"state": (3,)}, 2, 10)
    load_weights(actor, learner.weights())
    obs = {"state": np.ones(3, np.float32)}
    torch.manual_seed(5)
    a = agent.act(obs, True, eval_mode=True)
    torch.manual_seed(5)
    np.testing.assert_array_equal(actor.act(obs, True, eval_mode=True), a)
    with pytest.raises(ValueError, match="without its first observation"):
        Learner(agent, buffer, learner.sampler).ingest(wire[3])


def test_subprocess_pool_steps_like_the_local_one():
    factory = TaskEnvFactory("panda-reach", "state", seed=0)
    local, remote = LocalEnvPool(factory, 3), SubprocessEnvPool(factory, 3, workers=2)
    try:
        a, b = local.reset([0, 1, 2], [5, 6, 7]), remote.reset([0, 1, 2], [5, 6, 7])
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x["state"], y["state"])
        actions = np.random.default_rng(0).uniform(-1, 1, (2, 8)).astype(np.float32)
        for x, y in zip(local.step([2, 0], actions), remote.step([2, 0], actions)):
            np.testing.assert_array_equal(x[0]["state"], y[0]["state"])
            assert x[1:] == y[1:]
    finally:
        local.close()
        remote.close()


def rows(path: Path) -> list[dict]:
    with path.open() as f:
        return [{k: v for k, v in r.items() if k not in ("steps_per_s", "elapsed_s")} for r in csv.DictReader(f)]


def test_one_and_four_environments_keep_the_same_bookkeeping(tmp_path):
    for n in (1, 4):
        assert main(["train", *TINY, "steps=160", "eval_every=80", "checkpoint_every=0", "updates_per_step=0.5",
                     f"envs={n}", f"out={tmp_path / str(n)}"]) == 0
    one, four = load_checkpoint(tmp_path / "1" / "agent.pt"), load_checkpoint(tmp_path / "4" / "agent.pt")
    assert one["step"] == four["step"] == 160 and one["episode"] == four["episode"] == 4
    # updates per environment step keep their meaning: 80 seeding steps x 0.5 + 80 x 0.5
    assert one["extra"]["updates"] == four["extra"]["updates"] == 80
    train1, train4 = rows(tmp_path / "1" / "train.csv"), rows(tmp_path / "4" / "train.csv")
    assert len(train1) == len(train4) == 4 and set(train1[0]) == set(train4[0])
    assert sorted(int(r["env"]) for r in train4) == [0, 1, 2, 3]
    assert [int(r["step"]) for r in rows(tmp_path / "4" / "eval.csv")] == [160]
    assert [int(r["step"]) for r in rows(tmp_path / "1" / "eval.csv")] == [80, 160]


def test_resume_after_kill_with_four_environments_matches_uninterrupted_run(tmp_path):
    args = [*TINY, "envs=4", "steps=320", "eval_every=160", "checkpoint_every=160", "updates_per_step=0.25"]
    straight = tmp_path / "straight"
    assert main(["train", *args, f"out={straight}"]) == 0

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.cli", "train", *args, f"out={killed}"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "agent.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = load_checkpoint(killed / "agent.pt")["step"]
    assert interrupted_at < 320, "the run finished before it could be killed"

    assert main(["train", *args, f"out={killed}", "resume=true"]) == 0
    a, b = load_checkpoint(straight / "agent.pt"), load_checkpoint(killed / "agent.pt")
    assert a["step"] == b["step"] == 320
    for key, value in a["agent"]["model"].items():
        assert torch.equal(value, b["agent"]["model"][key]), key
    assert rows(straight / "train.csv") == rows(killed / "train.csv")
    assert rows(straight / "eval.csv") == rows(killed / "eval.csv")


class SingleInstanceEnv(TaggedEnv):
    """Stands in for an environment that can exist once per process (a robot connection, a licensed simulator)."""
    live = 0

    def __init__(self):
        if SingleInstanceEnv.live:
            raise RuntimeError("only one instance can be connected")
        SingleInstanceEnv.live += 1

    def close(self):
        SingleInstanceEnv.live = 0


def test_bad_training_input_is_refused_clearly(tmp_path, capsys):
    assert main(["train", *TINY, "envs=0", f"out={tmp_path / 'a'}"]) == 2
    assert "envs=0; expected >= 1" in capsys.readouterr().err
    assert main(["train", *TINY, "updates_per_step=-1", f"out={tmp_path / 'b'}"]) == 2
    assert "updates_per_step=-1.0; expected >= 0" in capsys.readouterr().err
    assert main(["train", *TINY, "preset=gpu9", f"out={tmp_path / 'c'}"]) == 2
    assert "preset='gpu9': unknown" in capsys.readouterr().err
    gym.register(id="SingleInstance-v0", entry_point=SingleInstanceEnv, max_episode_steps=10)
    try:
        assert main(["train", *TINY, "task=gym:SingleInstance-v0", "envs=2", "planner.plan=false",
                     f"out={tmp_path / 'd'}"]) == 2
        err = capsys.readouterr()
        assert "environment 1 of envs=2 could not be built (RuntimeError: only one instance can be connected)" \
            in err.out + err.err
    finally:
        del gym.registry["SingleInstance-v0"]


def test_train_and_eval_view_rerun_write_rrd_files_with_the_expected_entities(tmp_path):
    from tests.hardware.test_rerun_view import entity_paths

    out = tmp_path / "run"
    assert main(["train", *TINY, "steps=80", "seed_steps=40", "envs=2", "view=rerun", "view_envs=2",
                 f"out={out}"]) == 0
    paths = entity_paths(out / "view.rrd")
    for env in (0, 1):
        for entity in ("action", "reward", "success", "joints/position", "scene/tool", "scene/goal", "plan/actions"):
            assert f"/env/{env}/{entity}" in paths, (entity, sorted(paths))
    assert main(["eval", f"checkpoint={out / 'agent.pt'}", "episodes=2", "threads=1", "view=rerun"]) == 0
    assert {"/env/0/action", "/env/1/scene/goal"} <= entity_paths(out / "eval_view.rrd")


def test_device_mirror_samples_what_the_buffer_samples():
    """The GPU-side copy of the replay storage (tested here on the CPU device) stays equal to the buffer as
    episodes arrive, the arrays grow and wrap, and gives the same batches for the same random draws."""
    rng = np.random.default_rng(0)
    buffer = ReplayBuffer(6000, {"state": ((3,), "float32")}, 2, horizon=3, seed=4)
    twin = ReplayBuffer(6000, {"state": ((3,), "float32")}, 2, horizon=3, seed=4)
    sampler = UniformSampler(buffer, torch.device("cpu"), mirror=True)
    assert sampler.mirror is not None
    for episode in range(320):  # ~7400 entries: grows past the first allocation (4096) and wraps
        length = int(rng.integers(5, 40))
        obs = {"state": rng.normal(size=(length + 1, 3)).astype(np.float32)}
        action, reward = rng.uniform(-1, 1, (length, 2)).astype(np.float32), rng.normal(size=length).astype(np.float32)
        for b in (buffer, twin):
            b.add_episode(obs, action, reward, terminated=bool(episode % 3 == 0))
        if episode % 25 == 0:
            got, want = sampler.sample(64, 0), twin.sample(64)
            torch.testing.assert_close(got.obs["state"], want.obs["state"])
            for name in ("action", "reward", "terminated"):
                torch.testing.assert_close(getattr(got, name), getattr(want, name))
    assert buffer.writes > buffer.capacity
