import numpy as np
import pytest
import torch

from robot_rl.replay_buffer import Batch, ReplayBuffer

SPEC = {"state": ((2,), "float32")}


def fill(buf: ReplayBuffer, episodes: int, length: int) -> None:
    """obs = (episode, t); the action leading to obs t is t, its reward 10*episode + t."""
    for ep in range(episodes):
        buf.start_episode({"state": np.array([ep, 0], np.float32)})
        for t in range(1, length + 1):
            buf.add({"state": np.array([ep, t], np.float32)}, np.array([t], np.float32), 10.0 * ep + t)


def check_alignment(batch: Batch, horizon: int) -> None:
    obs = batch.obs["state"]
    assert obs.shape[0] == horizon + 1 and batch.action.shape[0] == horizon
    assert torch.all(obs[:, :, 0] == obs[0:1, :, 0]), "a sub-trajectory crossed an episode boundary"
    torch.testing.assert_close(obs[1:, :, 1] - obs[:-1, :, 1], torch.ones_like(obs[1:, :, 1]))
    torch.testing.assert_close(batch.action[:, :, 0], obs[1:, :, 1])  # the action that led to obs[t+1]
    torch.testing.assert_close(batch.reward, 10 * obs[1:, :, 0] + obs[1:, :, 1])


def test_subtrajectories_stay_inside_episodes_and_align():
    buf = ReplayBuffer(10_000, SPEC, 1, horizon=3, seed=0)
    fill(buf, 20, 7)
    batch = buf.sample(512)
    check_alignment(batch, 3)
    starts = batch.obs["state"][0, :, 1]
    assert set(starts.tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}  # every valid start, including the reset obs


def test_ring_wraps_without_mixing_old_and_new():
    buf = ReplayBuffer(50, SPEC, 1, horizon=3, seed=1)
    fill(buf, 30, 9)  # 300 entries through a ring of 50
    assert len(buf) == 50
    batch = buf.sample(1024)
    check_alignment(batch, 3)
    assert batch.obs["state"][0, :, 0].min() >= 24  # only the most recent episodes remain


def test_empty_or_short_buffer_is_an_error():
    buf = ReplayBuffer(100, SPEC, 1, horizon=3)
    with pytest.raises(RuntimeError, match="start_episode"):
        buf.add({"state": np.zeros(2, np.float32)}, np.zeros(1, np.float32), 0.0)
    fill(buf, 2, 2)  # episodes shorter than the horizon
    with pytest.raises(RuntimeError, match="sub-trajectory"):
        buf.sample(4)


def test_save_load_round_trip_continues_identically(tmp_path):
    buf = ReplayBuffer(1000, SPEC, 1, horizon=3, seed=5)
    fill(buf, 10, 8)
    buf.save(tmp_path / "buffer.npz")
    copy = ReplayBuffer(1000, SPEC, 1, horizon=3, seed=99)
    copy.load(tmp_path / "buffer.npz")
    for a, b in [(buf.sample(64), copy.sample(64)) for _ in range(3)]:
        torch.testing.assert_close(a.obs["state"], b.obs["state"])
        torch.testing.assert_close(a.reward, b.reward)
    fill(buf, 1, 5)
    fill(copy, 1, 5)
    torch.testing.assert_close(buf.sample(32).obs["state"], copy.sample(32).obs["state"])


def test_corrupt_buffer_file_is_refused(tmp_path):
    path = tmp_path / "buffer.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="buffer.npz"):
        ReplayBuffer(1000, SPEC, 1, horizon=3).load(path)


def test_add_episode_and_batch_cat():
    buf = ReplayBuffer(1000, SPEC, 1, horizon=2)
    obs = {"state": np.stack([np.zeros(6), np.arange(6)], axis=1).astype(np.float32)}
    buf.add_episode(obs, np.arange(1, 6, dtype=np.float32)[:, None], np.arange(1, 6, dtype=np.float32))
    a, b = buf.sample(3), buf.sample(5)
    both = Batch.cat([a, b])
    assert both.obs["state"].shape == (3, 8, 2) and both.action.shape == (2, 8, 1)
    check_alignment(both, 2)
    with pytest.raises(ValueError, match="lengths"):
        buf.add_episode(obs, np.zeros((4, 1), np.float32), np.zeros(5, np.float32))
