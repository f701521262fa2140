"""A generated hidden arm (calibration.hidden_arms: every joint its own damping, armature, friction loss and kp;
payload, action latency and joint noise drawn too) excited over DDS: `robot-rl sysid excite run_on=dds
dds_arm=sim` plays a short excitation on sim_robot_node (its own process, the hidden file as its params_file),
as stamped one-point trajectories on its joint_trajectory_controller topic, while the recorder node writes an
MCAP bag; `robot-rl sysid fit` on that bag, which never sees the hidden file,
recovers the excited joints' position gains and the action latency, and predicts held-out data better than the
description does."""
import pytest

from calibration import hidden_arms
from robot_rl.cli import main
from sim.params import load_params
from sim.robot import load_robot

SEED = 1
JOINTS = ("panda_joint2", "panda_joint4")
COMMAND_HZ = 25.0
# Measured on this arm with an 8 s recording and 30 iterations: kp within 0.5 % / 3.8 %, latency exact, held-out
# RMSE at the noise floor; this shorter run leaves room (it prints its errors).
KP_REL_TOL = 0.10


def _domain() -> int:
    from hardware.transport.dds import private_domain_id

    return private_domain_id()


@pytest.fixture(scope="module")
def hidden_arm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hidden_dds")
    robot = load_robot("panda")
    arm = hidden_arms.draw(SEED, robot)
    hidden_arms.write(folder / "hidden.yaml", arm, robot.name)
    code = main(["sysid", "excite", f"out={folder / 'excitation.yaml'}", f"joints={','.join(JOINTS)}",
                 "design=random", "duration_s=6", "base_freq_hz=0.333333", "n_harmonics=4", f"command_hz={COMMAND_HZ}",
                 "state_hz=250", "ramp_velocity=0.6", "run_on=dds", "dds_arm=sim",
                 "command_topic=/joint_trajectory_controller/joint_trajectory",
                 f"real_params={folder / 'hidden.yaml'}", f"recording={folder / 'rec'}", f"domain_id={_domain()}"])
    assert code == 0
    return folder, arm


def test_generated_arms_differ_per_joint_and_per_seed():
    robot = load_robot("panda")
    kp = hidden_arms.description_kp(robot)
    a, b = hidden_arms.draw(0, robot, kp=kp), hidden_arms.draw(1, robot, kp=kp)
    assert a.values != b.values and hidden_arms.draw(0, robot, kp=kp).values == a.values
    damping = [a.values[f"damping/{j}"] for j in robot.arm_joints]
    assert len(set(damping)) == len(damping) and all(0.5 <= d <= 3.0 for d in damping)
    assert all(0.5 <= a.values[f"kp/{j}"] / kp[j] <= 1.2 for j in robot.arm_joints)
    assert a.values["action_latency"] in (1.0, 2.0) and 0.2e-3 <= a.values["obs_noise"] <= 1.5e-3
    with pytest.raises(ValueError, match="ArmRanges.damping"):
        hidden_arms.ArmRanges(damping=(3.0, 0.5))


def test_fit_over_dds_recovers_gains_and_latency(hidden_arm, capsys):
    folder, arm = hidden_arm
    out = folder / "robot_params.yaml"
    # Joint damping stays at the description's value: it adds 0.5-3 N m s to the servo's kv of 175-225, and
    # fitted alongside kp it only trades against it (with the excitation kept inside the servos' force range, kp
    # of joint 4 came out 11 % off and was reported as not determined).
    code = main(["sysid", "fit", f"recording={folder / 'rec'}", f"out={out}", f"joints={','.join(JOINTS)}",
                 "kinds=armature,frictionloss,kp", "max_latency=2", "offset_ticks=2", "max_iters=10",
                 f"control_hz={COMMAND_HZ}", "html_report=false"])
    printed = capsys.readouterr().out
    print(printed)
    assert code == 0
    fitted = load_params(out).parameters
    print({j: round(fitted[f"kp/{j}"].value / arm.values[f"kp/{j}"] - 1, 4) for j in JOINTS})
    for joint in JOINTS:
        name = f"kp/{joint}"
        assert fitted[name].value == pytest.approx(arm.values[name], rel=KP_REL_TOL), name
    assert fitted["action_latency"].value == arm.values["action_latency"]
    prior, after = (float(v) for v in printed.split("held-out data: prior ")[1].split(" rad")[0].split(" -> fitted "))
    assert after < prior      # (the held-out tail is mostly the final hold: little to improve on)
    fit_prior, fit_after = (float(v) for v in
                            printed.split("fit data: prior ")[1].split(" rad")[0].split(" -> fitted "))
    assert fit_after < 0.5 * fit_prior
