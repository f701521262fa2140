"""Remote collectors: real Ray actors stepping real panda-reach environments deliver plain-data transitions that a
learner in this process stores and trains on; weights broadcast back make the actors act with the learner's agent."""
import pytest
import torch

from robot_rl.agent import TDMPC2
from robot_rl.agent_config import agent_config_of
from robot_rl.envs import make_env
from robot_rl.overrides import build
from robot_rl.replay_buffer import ReplayBuffer
from robot_rl.train import Config
from robot_rl.training.learner import Learner
from robot_rl.training.remote import RemoteCollectors, learn_remote
from robot_rl.training.samplers import UniformSampler

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

TINY = {"task": "panda-reach", "model_size": "1M", "mlp_dim": 32, "enc_dim": 32, "latent_dim": 16,
        "batch_size": 8, "horizon": 2, "planner.samples": 16, "planner.elites": 4, "planner.iterations": 1,
        "planner.policy_samples": 2, "planner.plan": False, "seed": 4}  # the policy prior acts: cheap on 2 cores


def make_learner(config, info) -> Learner:
    torch.manual_seed(config.seed)
    agent = TDMPC2(agent_config_of(config), info.model_obs_spec, info.action_dim, info.episode_length, "cpu")
    buffer = ReplayBuffer(10_000, info.obs_spec, info.action_dim, config.horizon, seed=config.seed)
    return Learner(agent, buffer, UniformSampler(buffer, torch.device("cpu")))


def test_remote_collector_actors_deliver_transitions_the_learner_trains_on(ray_session):
    config = build(Config, TINY)
    env, info = make_env(config.task, seed=config.seed)
    env.close()
    learner = make_learner(config, info)
    collectors = RemoteCollectors(config, info, actors=2, envs=1, cpus=0.5)
    try:
        chunks = [collectors.next()]
        while {c.actor for c in chunks} != {0, 1}:  # whichever actor is ready first
            assert len(chunks) < 8, "one actor never delivered"
            chunks.append(collectors.next())
        assert all(c.version == -1 for c in chunks)  # no weights yet: random seeding
        assert sum(learner.ingest(c.transitions) for c in chunks) == len(chunks)  # one whole episode per chunk
        assert len(learner.buffer) == len(chunks) * (info.episode_length + 1)
        before = [p.detach().clone() for p in learner.agent.model.parameters()]
        learner.update(3, step=2 * info.episode_length)
        assert any(not torch.equal(a, b) for a, b in zip(before, learner.agent.model.parameters()))

        collectors.broadcast(learner.weights(), version=1)
        chunk = collectors.next()
        while chunk.version != 1:  # chunks already under way were collected with the old weights
            learner.ingest(chunk.transitions)
            chunk = collectors.next()
        assert learner.ingest(chunk.transitions) == 1 and chunk.steps == info.episode_length
        assert len({int(e) for e in chunk.transitions.episode}) == 1

        stats = learn_remote(learner, collectors, steps=2 * info.episode_length, updates_per_step=0.1,
                             broadcast_every=2)
        assert stats["env_steps"] >= 2 * info.episode_length and stats["updates"] > 3
        assert 0.0 <= stats["learner_idle"] <= 1.0
        assert all(s["version"] >= 1 for s in collectors.stats())
    finally:
        collectors.close()
