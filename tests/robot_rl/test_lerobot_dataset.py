"""LeRobotDataset v3 (robot_rl/lerobot_dataset.py) against a dataset LeRobot's own writer made
(tests/robot_rl/fixtures/lerobot_panda_reach, from the rollout kept in lerobot_panda_reach_source.npz)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from robot_rl.demo_dataset import DemoError, check_compatible, load_demos
from robot_rl.lerobot_dataset import load_lerobot, read_lerobot, save_lerobot

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = FIXTURES / "lerobot_panda_reach"
SOURCE = FIXTURES / "lerobot_panda_reach_source.npz"


@pytest.fixture(scope="module")
def source():
    with np.load(SOURCE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def expert_demos():
    from robot_rl.demos import Config, collect

    return collect(Config(task="panda-reach", episodes=2, obs="state+pixels", progress=False))


@pytest.fixture(scope="module")
def written(tmp_path_factory, expert_demos):
    meta, episodes = expert_demos
    return save_lerobot(tmp_path_factory.mktemp("lr") / "reach", meta, episodes, robot_type="panda")


def test_reads_the_fixture_lerobot_wrote_with_its_values_and_frames(source):
    data = read_lerobot(FIXTURE)
    assert data.fps == 20 and data.camera == "observation.images.front" and len(data.episodes) == 2
    assert data.state_names[:7] == [f"panda_joint{i}.pos" for i in range(1, 8)]
    for i, ep in enumerate(data.episodes):
        np.testing.assert_array_equal(ep.state, source[f"state_{i}"])
        np.testing.assert_array_equal(ep.action, source[f"target_{i}"])
        np.testing.assert_array_equal(ep.env_state, source[f"goal_{i}"])
        np.testing.assert_array_equal(ep.reward, source[f"reward_{i}"])
        np.testing.assert_array_equal(ep.success, source[f"success_{i}"])
        np.testing.assert_allclose(ep.timestamp, np.arange(len(ep.state)) / 20, atol=1e-6)
        # AV1 at crf 30 is lossy: frames match the recorded camera images closely, not bit for bit
        error = np.abs(ep.images.astype(int) - source[f"image_{i}"].astype(int))
        assert ep.images.shape == source[f"image_{i}"].shape and error.mean() < 4.0
        # and each decoded frame is closest to its own source frame (frames are not shifted between episodes)
        other = np.abs(ep.images[1:].astype(int) - source[f"image_{i}"][:-1].astype(int)).mean()
        assert error[1:].mean() < other or np.allclose(source[f"image_{i}"][1:], source[f"image_{i}"][:-1])


def _schema(path: Path) -> dict[str, str]:
    return {f.name: str(f.type) for f in pq.read_schema(path)}


def test_written_dataset_has_the_fixtures_layout_and_metadata(written):
    files = lambda root: sorted(str(p.relative_to(root)).replace("observation.images.front", "<cam>")  # noqa: E731
                                .replace("observation.images.camera", "<cam>") for p in root.rglob("*") if p.is_file())
    assert files(written) == files(FIXTURE)
    ours, theirs = (json.loads((root / "meta/info.json").read_text()) for root in (written, FIXTURE))
    assert set(theirs) <= set(ours) and set(ours) - set(theirs) == {"robot_rl"}
    for key in theirs:
        if key not in ("features", "total_episodes", "total_frames"):
            assert ours[key] == theirs[key], key
    assert ours["codebase_version"] == "v3.0" and ours["total_frames"] == 82
    for key in ("action", "observation.state", "next.reward", "next.success", "next.done", "timestamp",
                "frame_index", "episode_index", "index", "task_index"):
        assert set(ours["features"][key]) == set(theirs["features"][key]), key
        assert ours["features"][key]["dtype"] == theirs["features"][key]["dtype"], key
    assert ours["features"]["observation.state"]["names"][:7] == [f"panda_joint{i}.pos" for i in range(1, 8)]
    assert ours["features"]["observation.images.camera"]["info"] == theirs["features"]["observation.images.front"]["info"]

    data = "data/chunk-000/file-000.parquet"
    ours_s, theirs_s = _schema(written / data), _schema(FIXTURE / data)
    for key, kind in theirs_s.items():
        if key != "observation.environment_state":
            assert ours_s[key].split("[")[0] == kind.split("[")[0], key
    assert set(ours_s) == set(theirs_s) - {"observation.environment_state"}
    assert b"huggingface" in pq.read_metadata(written / data).metadata

    episodes = "meta/episodes/chunk-000/file-000.parquet"
    rename = lambda cols: {c.replace("observation.images.front", "<cam>").replace("observation.images.camera", "<cam>")  # noqa: E731
                           for c in cols if "environment_state" not in c}
    assert rename(_schema(written / episodes)) == rename(_schema(FIXTURE / episodes))
    assert _schema(written / "meta/tasks.parquet") == _schema(FIXTURE / "meta/tasks.parquet")
    ours_stats, theirs_stats = (json.loads((root / "meta/stats.json").read_text()) for root in (written, FIXTURE))
    assert set(ours_stats["observation.state"]) == set(theirs_stats["observation.state"])
    assert np.shape(ours_stats["observation.images.camera"]["mean"]) == (3, 1, 1)


def test_our_demos_round_trip(written, expert_demos):
    meta, episodes = expert_demos
    meta2, episodes2 = load_demos(written)
    assert meta2 == meta
    for a, b in zip(episodes, episodes2):
        for key in ("state", "action", "reward", "success"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
        assert b.pixels.shape == a.pixels.shape and np.abs(a.pixels.astype(int) - b.pixels).mean() < 4.0


def test_real_arm_dataset_converts_for_a_task(source):
    """Joint positions + absolute joint targets (what LeRobot records on a position-controlled arm) become the
    task's state vector and normalised delta actions: the expert's own actions come back."""
    from robot_rl.envs import make_env

    meta, episodes = load_demos(FIXTURE, task="panda-reach")
    env, info = make_env("panda-reach", "state+pixels")
    env.close()
    check_compatible(meta, FIXTURE, "panda-reach", {k: v[0] for k, v in info.obs_spec.items()}, info.action_dim,
                     info.obs_layout)
    for i, ep in enumerate(episodes):
        np.testing.assert_allclose(ep.action, source[f"action_{i}"][:-1], atol=1e-4)
        np.testing.assert_array_equal(ep.success, source[f"success_{i}"][:-1])
        np.testing.assert_allclose(ep.state[:, :7], source[f"state_{i}"][:, :7])


def test_real_arm_dataset_without_a_task_names_the_conversion():
    with pytest.raises(DemoError, match=r"info.json: recorded by LeRobot .* robot-rl demos lerobot="):
        load_lerobot(FIXTURE)


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(FIXTURE, root)
    return root


def _edit_info(root: Path, edit) -> None:
    path = root / "meta/info.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info))


def test_wrong_fps_names_the_file_and_field(tmp_path):
    root = _copy(tmp_path)
    _edit_info(root, lambda info: info.update(fps=30))
    with pytest.raises(DemoError, match=r"file-000.parquet: column 'timestamp' .* field 'fps' is 30"):
        read_lerobot(root)


def test_fps_other_than_the_tasks_control_rate_is_refused(tmp_path, written):
    root = tmp_path / "ds"
    shutil.copytree(FIXTURE, root)
    data = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data)
    import pyarrow as pa

    table = table.set_column(table.column_names.index("timestamp"), "timestamp",
                             pa.array(table.column("timestamp").to_numpy() * 2, pa.float32()))
    pq.write_table(table, data)
    _edit_info(root, lambda info: info.update(fps=10))
    with pytest.raises(DemoError, match=r"videos/.*file-000.mp4: video runs at 20 fps; meta/info.json field 'fps' "
                                        r"is 10"):
        read_lerobot(root)


def test_missing_feature_names_the_file(tmp_path):
    root = _copy(tmp_path)
    _edit_info(root, lambda info: info["features"].pop("action"))
    with pytest.raises(DemoError, match=r"info.json: feature 'action' missing"):
        read_lerobot(root)


def test_missing_column_names_the_parquet_file(tmp_path):
    root = _copy(tmp_path)
    data = root / "data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(data).drop(["observation.state"]), data)
    with pytest.raises(DemoError, match=r"data/chunk-000/file-000.parquet: column 'observation.state' missing"):
        read_lerobot(root)


def test_mismatched_joint_count_names_the_field(tmp_path):
    root = _copy(tmp_path)

    def six_joints(info):
        info["features"]["observation.state"]["names"] = info["features"]["observation.state"]["names"][:7]

    _edit_info(root, six_joints)
    with pytest.raises(DemoError, match=r"field 'features.observation.state.names' lists 7 names; its shape is \[8\]"):
        read_lerobot(root)

    root = tmp_path / "ds2"
    shutil.copytree(FIXTURE, root)

    def shape_seven(info):
        info["features"]["observation.state"]["shape"] = [7]
        info["features"]["observation.state"]["names"] = info["features"]["observation.state"]["names"][:7]

    _edit_info(root, shape_seven)
    with pytest.raises(DemoError, match=r"column 'observation.state' has \(8,\) values per frame; meta/info.json "
                                        r"gives shape \[7\]"):
        read_lerobot(root)


def test_arm_with_other_joints_is_refused_by_name(tmp_path):
    from robot_rl.recording_to_demos import RecordingError

    root = _copy(tmp_path)

    def so100(info):
        info["features"]["observation.state"]["names"][0] = "shoulder_pan.pos"

    _edit_info(root, so100)
    with pytest.raises(RecordingError, match=r"field 'features.observation.state.names' is \['shoulder_pan.pos'"):
        load_demos(root, task="panda-reach")


def test_corrupt_parquet_and_version_name_the_file(tmp_path):
    root = _copy(tmp_path)
    data = root / "data/chunk-000/file-000.parquet"
    data.write_bytes(data.read_bytes()[:200])
    with pytest.raises(DemoError, match=r"data/chunk-000/file-000.parquet: unreadable parquet"):
        read_lerobot(root)
    root = tmp_path / "old"
    shutil.copytree(FIXTURE, root)
    _edit_info(root, lambda info: info.update(codebase_version="v2.1"))
    with pytest.raises(DemoError, match=r"info.json: field 'codebase_version' is 'v2.1'"):
        read_lerobot(root)


def test_demos_command_writes_lerobot_format(tmp_path, capsys):
    from robot_rl.cli import main

    out = tmp_path / "reach"
    assert main(["demos", "task=panda-reach", "episodes=1", "format=lerobot", f"out={out}", "progress=false"]) == 0
    meta, episodes = load_demos(out)
    assert meta.task == "panda-reach" and meta.obs_keys == ["state"] and len(episodes) == 1
    assert not (out / "videos").exists()
    assert json.loads((out / "meta/info.json").read_text())["robot_type"] == "panda"


def test_reads_cameras_stored_as_images_in_the_parquet(source):
    """LeRobot's other camera storage (use_videos=False, PNG in the parquet), by LeRobot's own writer: lossless."""
    data = read_lerobot(FIXTURES / "lerobot_panda_reach_images")
    (ep,) = data.episodes
    assert data.camera == "observation.images.front" and len(ep.images) == 6
    np.testing.assert_array_equal(ep.images, source["image_0"][:6])
    np.testing.assert_array_equal(ep.state, source["state_0"][:6])
    meta, (demo,) = load_demos(FIXTURES / "lerobot_panda_reach_images", task="panda-reach")
    assert meta.obs_keys == ["state", "pixels"] and demo.pixels.shape == (6, 3, 64, 64)


def test_undecodable_image_names_the_file_column_and_row(tmp_path):
    import pyarrow as pa

    root = tmp_path / "ds"
    shutil.copytree(FIXTURES / "lerobot_panda_reach_images", root)
    data = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data)
    cells = table.column("observation.images.front").to_pylist()
    cells[2] = {"bytes": b"not a png", "path": None}
    table = table.set_column(table.column_names.index("observation.images.front"), "observation.images.front",
                             pa.array(cells, table.schema.field("observation.images.front").type))
    pq.write_table(table, data)
    with pytest.raises(DemoError, match=r"file-000.parquet: column 'observation.images.front' row 2: undecodable"):
        read_lerobot(root)
