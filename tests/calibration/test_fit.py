"""`robot-rl sysid excite` + `robot-rl sysid fit` end to end: a simulated arm with a hidden parameters file is
excited (actively designed trajectory) and recorded to a real rosbag2/MCAP file; the fit, which never sees the
hidden file, recovers the identifiable parameters and writes a parameters file sim/ loads."""
from pathlib import Path

import numpy as np
import pytest
import yaml

from robot_rl.cli import main
from sim.params import load_params

HIDDEN = {"armature/panda_joint2": 0.2, "kp/panda_joint4": 2800.0, "payload_mass": 0.6, "action_latency": 1,
          "obs_noise": 2e-4}
JOINTS = "panda_joint2,panda_joint4"


def _hidden_file(folder: Path) -> Path:
    path = folder / "hidden.yaml"
    path.write_text(yaml.safe_dump({"format": "robot_rl.robot_params", "version": 1, "robot": "panda",
                                    "parameters": {k: {"value": v} for k, v in HIDDEN.items()}}))
    return path


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sysid")
    hidden = _hidden_file(folder)
    code = main(["sysid", "excite", f"out={folder / 'excitation.yaml'}", f"joints={JOINTS}", "kinds=armature,kp",
                 "duration_s=8", "base_freq_hz=0.25", "n_harmonics=4", "population=5", "generations=1",
                 f"real_params={hidden}", f"recording={folder / 'rec'}"])
    assert code == 0
    return folder


def test_excite_writes_design_and_rosbag(recording):
    design = yaml.safe_load((recording / "excitation.yaml").read_text())
    assert design["format"] == "robot_rl.excitation"
    assert design["criterion"]["value"] >= design["criterion"]["best_random"]
    assert design["trajectory"]["joint_names"] == JOINTS.split(",")
    assert (recording / "rec" / "metadata.yaml").is_file()
    assert list((recording / "rec").glob("*.mcap"))
    # The design file replays: the commands it gives are the ones recorded.
    from calibration.excitation import commands_for
    from calibration.excite import load_design
    from calibration.recording_io import read_recording
    from sim.robot import load_robot

    traj, experiment, q_rest, robot = load_design(recording / "excitation.yaml")
    assert robot == "panda" and experiment.duration_s == 8.0
    arm_joints = load_robot("panda").arm_joints
    recorded = read_recording(recording / "rec", arm_joints)
    np.testing.assert_allclose(recorded.command, commands_for(traj, experiment, q_rest, arm_joints))


def test_fit_recovers_hidden_parameters(recording, capsys):
    out = recording / "robot_params.yaml"
    code = main(["sysid", "fit", f"recording={recording / 'rec'}", f"out={out}", f"joints={JOINTS}",
                 "kinds=armature,kp", "max_latency=2", "html_report=false"])
    assert code == 0
    params = load_params(out)              # sim/'s own loader accepts what calibration wrote
    value = {n: p.value for n, p in params.parameters.items()}
    assert value["action_latency"] == 1
    printed = capsys.readouterr().out
    print(printed, {k: round(v, 4) for k, v in value.items()})
    # Positions only (the default; README "sysid"): armature measured 5.2 % off before the design kept the servos
    # inside their force range; with the slower excitation that needs it was 16 % off, reported as not determined.
    # Either it is recovered, or the report says the data did not determine it and its interval holds the truth.
    lo, hi = params.parameters["armature/panda_joint2"].ci
    assert (value["armature/panda_joint2"] == pytest.approx(0.2, rel=0.1)
            or ("armature/panda_joint2" in printed.split("not determined by these data: ")[-1] and lo <= 0.2 <= hi))
    assert value["kp/panda_joint4"] == pytest.approx(2800.0, rel=0.01)
    assert value["payload_mass"] == pytest.approx(0.6, abs=0.05)
    # Parameters left at their description values are found there.
    # (positions only, the default: joint 4's armature, barely accelerated here, landed within ~17 %; 28 % with
    # the force-limited excitation, then its interval must hold the truth)
    lo, hi = params.parameters["armature/panda_joint4"].ci
    assert value["armature/panda_joint4"] == pytest.approx(0.1, rel=0.25) or lo <= 0.1 <= hi, (lo, hi)
    assert value["kp/panda_joint2"] == pytest.approx(4500.0, rel=0.01)
    # The residual that is left is the observation noise.
    assert value["obs_noise"] == pytest.approx(2e-4, rel=0.3)
    # Latency and noise carry ranges too, so `train randomize=true` randomises them over what was identified.
    lo, hi = params.parameters["action_latency"].ci
    assert lo <= 1 <= hi and hi - lo <= 1
    lo, hi = params.parameters["obs_noise"].ci
    assert lo <= value["obs_noise"] <= hi and lo == pytest.approx(2e-4, rel=0.5) and hi < 4e-4
    for name in ("armature/panda_joint2", "kp/panda_joint4", "payload_mass"):
        lo, hi = params.parameters[name].ci
        assert lo <= value[name] <= hi and hi > lo
    report = recording / "robot_params_report"
    assert (report / "trajectories.png").stat().st_size > 10_000
    summary = (report / "summary.txt").read_text()
    assert "latency 1 command periods" in summary
    printed = capsys.readouterr().out
    prior, fitted = (float(v) for v in
                     printed.split("held-out data: prior ")[1].split(" rad")[0].split(" -> fitted "))
    assert fitted < 0.5 * prior


def test_fit_refuses_bad_recordings(tmp_path, capsys):
    assert main(["sysid", "fit", f"recording={tmp_path / 'nope'}", f"out={tmp_path / 'p.yaml'}"]) == 2
    assert "nope: recording not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["sysid", "fit", f"recording={tmp_path / 'empty'}", f"out={tmp_path / 'p.yaml'}"]) == 2
    assert "not a readable rosbag2 recording" in capsys.readouterr().err
    assert not (tmp_path / "p.yaml").exists()


def test_fit_refuses_recording_with_other_joints(tmp_path, capsys):
    from calibration.recording_io import JointRecording, write_recording

    n = 300
    stamps = np.arange(n, dtype=np.int64) * 10_000_000
    names = tuple(f"joint{i}" for i in range(7))
    write_recording(tmp_path / "rec", JointRecording(names, stamps, np.zeros((n, 7)), np.zeros((n, 7)),
                                                     stamps[::5], np.zeros((60, 7))))
    assert main(["sysid", "fit", f"recording={tmp_path / 'rec'}", f"out={tmp_path / 'p.yaml'}"]) == 2
    assert "lacks joint(s) ['panda_joint1'" in capsys.readouterr().err


def test_excite_refuses_what_it_cannot_do(tmp_path, capsys):
    assert main(["sysid", "excite", "run_on=dds", "dds_arm=robot", f"out={tmp_path / 'e.yaml'}"]) == 2
    assert "dds_arm='robot': expected 'sim'" in capsys.readouterr().err
    assert main(["sysid", "excite", "design=clever", f"out={tmp_path / 'e.yaml'}"]) == 2
    assert main(["sysid", "excite", "joints=elbow", f"out={tmp_path / 'e.yaml'}"]) == 2
    assert "['elbow'] are not arm joints" in capsys.readouterr().err
    assert not (tmp_path / "e.yaml").exists()


def test_saved_design_replays_without_redesign(recording, capsys):
    """`sysid excite replay=excitation.yaml` plays the saved trajectory as it is: no design runs, and the new
    recording holds exactly the commands of the first."""
    from calibration.recording_io import read_recording
    from sim.robot import load_robot

    code = main(["sysid", "excite", f"replay={recording / 'excitation.yaml'}", f"out={recording / 'again.yaml'}",
                 f"real_params={recording / 'hidden.yaml'}", f"recording={recording / 'again'}"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "replaying" in printed and "candidates in" not in printed
    joints = load_robot("panda").arm_joints
    np.testing.assert_array_equal(read_recording(recording / "again", joints).command,
                                  read_recording(recording / "rec", joints).command)
    again = yaml.safe_load((recording / "again.yaml").read_text())
    assert again["trajectory"] == yaml.safe_load((recording / "excitation.yaml").read_text())["trajectory"]
    assert again["replayed_from"] == str(recording / "excitation.yaml")
    assert main(["sysid", "excite", f"replay={recording / 'nope.yaml'}", f"out={recording / 'x.yaml'}"]) == 2
    assert "nope.yaml: excitation file not found" in capsys.readouterr().err
