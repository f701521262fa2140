"""A fit that cannot beat the prior on held-out data says so: `sysid fit` exits non-zero with a clear message and
writes no parameters file (unless force=true). Here the held-out recording comes from a different arm than the
fit data (the payload was taken off between the two recordings: a real way to get this wrong), so the
parameters fitted to the first predict the second worse than the description does."""
import numpy as np
import pytest

from calibration.recording_io import write_recording
from calibration.simulated_arm import run_commands
from robot_rl.cli import main
from sim.params import load_params
from sim.robot import load_robot


def _commands(robot, seconds: float, hz: float) -> np.ndarray:
    t = np.arange(0.0, seconds, 1.0 / hz)
    q = np.tile(np.asarray(robot.home_qpos, float), (len(t), 1))
    q[:, 3] += 0.4 * np.sin(2 * np.pi * 0.5 * t) * np.minimum(t, 1.0)
    q[:, 1] += 0.2 * np.sin(2 * np.pi * 0.7 * t) * np.minimum(t, 1.0)
    return q


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fail")
    robot = load_robot("panda")
    commands = _commands(robot, 2.5, 20.0)
    loaded = {"payload_mass": 1.5, "kp/panda_joint4": 2200.0, "obs_noise": 2e-4}
    write_recording(folder / "loaded", run_commands(robot, commands, 20.0, loaded, state_hz=100.0, seed=1))
    write_recording(folder / "unloaded", run_commands(robot, commands, 20.0, {"obs_noise": 2e-4}, state_hz=100.0,
                                                      seed=2))
    return folder


def _fit(folder, out, *extra):
    return main(["sysid", "fit", f"recording={folder / 'loaded'}", f"holdout={folder / 'unloaded'}", f"out={out}",
                 "joints=panda_joint2,panda_joint4", "kinds=kp", "max_latency=0", "offset_ticks=0", "max_iters=5",
                 *extra])


def test_fit_that_does_not_beat_the_prior_fails_and_writes_nothing(recordings, tmp_path, capsys):
    out = tmp_path / "robot_params.yaml"
    assert _fit(recordings, out) == 3
    err = capsys.readouterr().err
    print(err)
    assert "FAILED: the fitted parameters predict the held-out data no better than the prior" in err
    assert "NOT written (force=true writes it anyway)" in err
    prior, fitted = (float(v) for v in err.split("joint RMSE ")[1].split(" rad")[0].split(" -> "))
    assert fitted > prior
    assert not out.exists()
    report = tmp_path / "robot_params_report"                              # the report says why, offline
    assert "FAILED" in (report / "report.html").read_text() and "://" not in (report / "report.html").read_text()
    assert "data:image/png;base64," in (report / "report.html").read_text()
    summary = (report / "summary.txt").read_text()
    assert "determined" in summary and "warnings:" in summary
    assert (report / "intervals.png").stat().st_size > 5_000 and (report / "trajectories.png").stat().st_size > 10_000


def test_force_writes_a_failed_fit(recordings, tmp_path, capsys):
    out = tmp_path / "robot_params.yaml"
    assert _fit(recordings, out, "force=true") == 0
    assert "forced: the fit did not beat the prior" in capsys.readouterr().out
    assert load_params(out).parameters["payload_mass"].value > 1.0      # what the (loaded) fit data say
