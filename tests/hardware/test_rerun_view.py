"""The Rerun view (hardware/rerun_view.py): what it logs lands at the documented entity paths of an .rrd file that
rerun's own reader opens; `robot-rl deploy ... view=rerun` writes one while the stack runs, and `robot-rl view`
plays the recorder's MCAP bag of that run into another."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from rerun.chunk import RrdReader

from hardware.rerun_view import RerunView, ViewError, check_view
from hardware.transport.dds import private_domain_id

from .deploy_helpers import ROOT, train_and_export


def entity_paths(rrd) -> set[str]:
    return set(RrdReader(str(rrd)).store().schema().entity_paths())


def rows(rrd, entity: str) -> int:
    """Rows logged at `entity` (summed over its chunks), from the reader's summary."""
    total = 0
    for line in RrdReader(str(rrd)).store().summary().splitlines():
        path, _, rest = line.partition(" rows=")
        if path == entity and "static=False" in rest:
            total += int(rest.split()[0])
    return total


def test_log_step_and_plan_land_at_the_documented_paths(tmp_path):
    view = RerunView("train test", rrd=tmp_path / "view.rrd", connect=False)
    names = [f"panda_joint{i}" for i in range(1, 8)]
    for step in range(6):
        obs = {"state": np.zeros(24, np.float32), "pixels": np.full((6, 16, 16), step, np.uint8)}  # 2 stacked
        info = {"success": step >= 4, "ee_pos": [0.4, 0.0, 0.3], "goal": [0.5, 0.1, 0.2], "joint_names": names,
                "joint_positions": np.full(7, 0.1 * step), "joint_targets": np.full(7, 0.1 * step + 0.05),
                "safety": "ok" if step < 3 else "limited"}
        for env_index in (0, 1):
            view.log_step(step, env_index, obs, np.full(8, 0.1), -0.5 + 0.1 * step, info)
        view.log_plan(step, 0, np.zeros((5, 8)), tool_path=np.linspace([0.4, 0, 0.3], [0.5, 0.1, 0.2], 5))
    path = view.close()
    assert path == tmp_path / "view.rrd" and path.stat().st_size > 0
    paths = entity_paths(path)
    for env_index in (0, 1):
        for entity in ("camera", "action", "reward", "success", "joints/position", "joints/target", "scene/tool",
                       "scene/goal", "safety"):
            assert f"/env/{env_index}/{entity}" in paths, (entity, sorted(paths))
    assert {"/env/0/plan/actions", "/env/0/scene/plan"} <= paths and "/env/1/plan/actions" not in paths
    assert rows(path, "/env/1/reward") == 6
    assert rows(path, "/env/0/safety") == 2        # logged when the status changes: ok, then limited


def test_view_option_is_checked():
    check_view("rerun")
    check_view("")
    with pytest.raises(ViewError, match=r"view='tensorboard': expected one of \['rerun'\]"):
        check_view("tensorboard")


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    return train_and_export(tmp_path_factory.getbasetemp(), steps=120, seed_steps=100)


def test_deploy_view_rerun_and_view_of_its_recording(tiny_bundle, tmp_path):
    bag, rrd = tmp_path / "bag", tmp_path / "deploy.rrd"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "robot_rl.cli", "deploy", f"bundle={tiny_bundle}", "robot=sim",
                           "duration_s=3", f"record={bag}", f"domain_id={private_domain_id()}", "backend=pybullet",
                           "view=rerun", f"view_rrd={rrd}"], env=env, capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"view: {rrd}" in out
    paths = entity_paths(rrd)
    for entity in ("joints/position", "joints/target", "scene/tool", "scene/goal", "success", "distance", "safety",
                   "policy/compute_ms"):
        assert f"/env/0/{entity}" in paths, (entity, sorted(paths))
    assert rows(rrd, "/env/0/joints/position") > 50     # /joint_states at the arm's rate for 3 s

    # the recorder's MCAP bag of the same run, played back
    proc = subprocess.run([sys.executable, "-m", "robot_rl.cli", "view", f"recording={bag}"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    played = tmp_path / "bag.rrd"
    assert f"-> {played}" in proc.stdout
    paths = entity_paths(played)
    assert {"/env/0/joints/position", "/env/0/joints/target"} <= paths, sorted(paths)
    assert rows(played, "/env/0/joints/position") > 50


def test_view_of_a_missing_recording_is_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "robot_rl.cli", "view", f"recording={tmp_path / 'none'}"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "recording=" in proc.stderr and "rosbag2 folder" in proc.stderr


def test_hardware_imports_without_rerun():
    code = ("import sys; import hardware.deploy, hardware.rerun_view; "
            "assert 'rerun' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_joint_recording_is_logged_as_time_series(tmp_path):
    """What `sysid excite view=rerun` shows: a recording's measured joints and targets on the time_s timeline."""
    from calibration.recording_io import JointRecording
    from hardware.rerun_view import log_joint_recording

    t = 1_700_000_000_000_000_000 + np.arange(0, 2_000_000_000, 10_000_000)
    recording = JointRecording(joint_names=("j1", "j2"), state_stamps=t, position=np.stack([np.sin(t * 1e-9)] * 2, 1),
                               velocity=None, command_stamps=t[::5], command=np.zeros((len(t[::5]), 2)))
    view = RerunView("sysid excite", rrd=tmp_path / "excite.rrd", connect=False)
    log_joint_recording(view, recording)
    path = view.close()
    assert {"/env/0/joints/position", "/env/0/joints/target"} <= entity_paths(path)
    assert rows(path, "/env/0/joints/position") == len(t) and rows(path, "/env/0/joints/target") == len(t[::5])


def test_a_simulated_episode_through_log_step(tmp_path):
    """The interface train/eval use, on a real MuJoCo panda-reach episode driven by the scripted expert: the
    joints, tool point and goal come out of the state vector by the observation layout."""
    from robot_rl.envs import make_env
    from sim.experts import Expert

    env, info = make_env("panda-reach", "state+pixels", seed=0, render_size=32)
    view = RerunView("train panda-reach", rrd=tmp_path / "train.rrd", connect=False, obs_layout=info.obs_layout,
                     joint_names=info.joint_names)
    expert = Expert(env, seed=0)
    obs, _ = env.reset(seed=0)
    for step in range(12):
        action = expert(env)
        obs, reward, terminated, truncated, step_info = env.step(action)
        view.log_step(step, 0, obs, action, reward, step_info)
    env.close()
    fields = view.state_fields(obs["state"])
    np.testing.assert_allclose(fields["goal"], env.unwrapped.goal, atol=1e-6)
    assert fields["joint_names"] == [f"panda_joint{i}" for i in range(1, 8)]
    path = view.close()
    assert {"/env/0/camera", "/env/0/joints/position", "/env/0/scene/tool", "/env/0/scene/goal", "/env/0/reward",
            "/env/0/success", "/env/0/action"} <= entity_paths(path)
    assert rows(path, "/env/0/scene/tool") == 12
