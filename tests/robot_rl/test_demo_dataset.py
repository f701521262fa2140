"""The demonstrations format: round trip, atomic writes, clear errors on corrupt or mismatched demos, and the
`robot-rl demos` collector on the real scripted expert."""
import json

import numpy as np
import pytest

from robot_rl.demo_dataset import DemoEpisode, DemoError, DemoMeta, check_compatible, load_demos, save_demos


def make_demos(episodes=3, steps=6, pixels=True, seed=0):
    rng = np.random.default_rng(seed)
    meta = DemoMeta(task="panda-reach-sparse", obs_keys=["state", "pixels"] if pixels else ["state"], state_dim=5,
                    pixel_shape=[3, 8, 8] if pixels else None, action_dim=2, control_hz=20.0,
                    joint_names=["a", "b"], obs_layout=[["x", 5]])
    eps = [DemoEpisode(action=rng.uniform(-1, 1, (steps, 2)).astype(np.float32),
                       reward=rng.random(steps).astype(np.float32), success=rng.random(steps) > 0.5,
                       state=rng.normal(size=(steps + 1, 5)).astype(np.float32),
                       pixels=rng.integers(0, 255, (steps + 1, 3, 8, 8), dtype=np.uint8) if pixels else None)
           for _ in range(episodes)]
    return meta, eps


def test_round_trip(tmp_path):
    meta, eps = make_demos()
    save_demos(tmp_path / "d", meta, eps)
    meta2, eps2 = load_demos(tmp_path / "d")
    assert meta2 == meta
    assert len(eps2) == 3
    for a, b in zip(eps, eps2):
        for key in ("action", "reward", "success", "state", "pixels"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert load_demos(tmp_path / "d", max_episodes=2)[1].__len__() == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left behind


def test_existing_folder_refused_then_replaced_whole(tmp_path):
    meta, eps = make_demos(episodes=3)
    save_demos(tmp_path / "d", meta, eps)
    with pytest.raises(DemoError, match="already exists"):
        save_demos(tmp_path / "d", meta, eps[:1])
    save_demos(tmp_path / "d", meta, eps[:1], overwrite=True)
    assert len(load_demos(tmp_path / "d")[1]) == 1  # the old episodes are gone, not mixed in


def test_failed_write_leaves_nothing(tmp_path):
    meta, eps = make_demos()
    eps[1].state[2, 0] = np.nan
    with pytest.raises(DemoError, match=r"episode 1.*'state'.*non-finite.*\(2, 0\)"):
        save_demos(tmp_path / "d", meta, eps)
    assert list(tmp_path.iterdir()) == []


def _corrupt(tmp_path, mutate):
    meta, eps = make_demos()
    save_demos(tmp_path / "d", meta, eps)
    mutate(tmp_path / "d")
    return tmp_path / "d"


def _rewrite_episode(path, **changes):
    file = path / "episode_00001.npz"
    with np.load(file) as data:
        arrays = {k: data[k] for k in data.files}
    for k, v in changes.items():
        if v is None:
            del arrays[k]
        else:
            arrays[k] = v(arrays[k])
    np.savez(file, **arrays)


@pytest.mark.parametrize("mutate, message", [
    (lambda p: _rewrite_episode(p, pixels=None), r"episode_00001.npz: array 'pixels' missing"),
    (lambda p: _rewrite_episode(p, action=lambda a: a[:, :1]), r"episode_00001.npz: array 'action' has shape"),
    (lambda p: _rewrite_episode(p, reward=lambda r: r[:-1]), r"'reward' has shape \(5,\); expected \(6,\)"),
    (lambda p: _rewrite_episode(p, action=lambda a: np.where(a > 0, np.nan, a)), r"'action' has a non-finite"),
    (lambda p: _rewrite_episode(p, action=lambda a: a * 3), r"outside \[-1, 1\]"),
    (lambda p: _rewrite_episode(p, pixels=lambda x: x.astype(np.float32)), r"'pixels' has dtype float32"),
    (lambda p: (p / "episode_00002.npz").write_bytes(b"PK\x03\x04garbage"), r"episode_00002.npz: unreadable"),
    (lambda p: (p / "meta.json").unlink(), r"meta.json: missing"),
    (lambda p: (p / "meta.json").write_text("{"), r"meta.json: not valid JSON"),
    (lambda p: (p / "meta.json").write_text(json.dumps({**json.loads((p / "meta.json").read_text()), "version": 9})),
     r"'version' is 9"),
    (lambda p: (p / "meta.json").write_text(json.dumps({**json.loads((p / "meta.json").read_text()),
                                                        "obs_keys": ["depth"]})), r"'obs_keys' is \['depth'\]"),
    (lambda p: [f.unlink() for f in p.glob("episode_*")], r"no episode_\*.npz"),
])
def test_corrupt_demos_named(tmp_path, mutate, message):
    path = _corrupt(tmp_path, mutate)
    with pytest.raises(DemoError, match=message):
        load_demos(path)


def test_missing_folder(tmp_path):
    with pytest.raises(DemoError, match="not found"):
        load_demos(tmp_path / "nope")


def test_mismatched_demos_refused():
    meta, _ = make_demos()
    ok = {"state": (5,), "pixels": (9, 8, 8)}  # a frame-stacked camera of the same size is compatible
    check_compatible(meta, "d", "panda-reach-sparse", ok, 2, [("x", 5)])
    with pytest.raises(DemoError, match="for task 'panda-reach-sparse'; this run trains task 'panda-pick'"):
        check_compatible(meta, "d", "panda-pick", ok, 2)
    with pytest.raises(DemoError, match="'action_dim' is 2; task .* has 8"):
        check_compatible(meta, "d", "panda-reach-sparse", ok, 8)
    with pytest.raises(DemoError, match="'state_dim' is 5"):
        check_compatible(meta, "d", "panda-reach-sparse", {"state": (7,)}, 2)
    with pytest.raises(DemoError, match="'pixel_shape' is \\[3, 8, 8\\]"):
        check_compatible(meta, "d", "panda-reach-sparse", {"pixels": (3, 16, 16)}, 2)
    with pytest.raises(DemoError, match="'obs_layout'"):
        check_compatible(meta, "d", "panda-reach-sparse", {"state": (5,)}, 2, [("y", 5)])
    state_only, _ = make_demos(pixels=False)
    with pytest.raises(DemoError, match="observes 'pixels' too"):
        check_compatible(state_only, "d", "panda-reach-sparse", ok, 2)


def test_collect_scripted_expert_demos(tmp_path):
    from robot_rl.cli import main

    out = tmp_path / "reach"
    assert main(["demos", "task=panda-reach-sparse", "episodes=2", f"out={out}", "obs=state+pixels",
                 "render_size=16", "progress=false"]) == 0
    meta, eps = load_demos(out)
    assert meta.task == "panda-reach-sparse" and meta.pixel_shape == [3, 16, 16] and meta.action_dim == 8
    assert meta.obs_layout[0] == ["arm_qpos", 7]
    for ep in eps:
        assert len(ep) == 40 and ep.success[-1] and ep.reward[-1] == 1.0  # sparse reward = success
        assert ep.pixels.shape == (41, 3, 16, 16) and ep.pixels.std() > 0
    assert main(["demos", "task=panda-reach-sparse", "episodes=1", f"out={out}", "progress=false"]) == 2
