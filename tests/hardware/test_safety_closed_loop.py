"""The safety filter in a closed loop with the real MuJoCo Panda (position servos, 2 ms physics, 50 Hz control):
an adversarial policy (large random steps, targets outside the limits, NaNs) never drives the simulated arm
outside its joint limits or its tool point out of the workspace box, and a stalled joint-state stream brings the
physical arm to rest."""
import mujoco
import numpy as np
import pytest

from hardware.kinematics import KinematicChain
from hardware.safety import SafetyFilter, SafetyStatus
from hardware.safety_config import SafetyConfig, limits_from_robot
from sim.kinematic_chain import chain_from_mjcf
from sim.robot import load_robot
from tests.hardware.test_safety_properties import InvariantChecker

HZ = 50
NS = 1_000_000_000


@pytest.fixture(scope="module")
def panda():
    robot = load_robot("panda")
    chain = chain_from_mjcf(robot.description, robot.arm_joints, robot.ee_site)
    home_tool = KinematicChain.from_dict(chain).tip_position(np.array(robot.home_qpos))
    limits = limits_from_robot(robot, home_tool - 0.2, home_tool + 0.2, chain)
    return robot, limits


class SimArm:
    def __init__(self, robot):
        self.model = mujoco.MjModel.from_xml_path(str(robot.description))
        self.data = mujoco.MjData(self.model)
        self.data.qpos[:7] = self.data.ctrl[:7] = robot.home_qpos
        mujoco.mj_forward(self.model, self.data)
        self.substeps = round(1 / HZ / self.model.opt.timestep)

    def state(self):
        return self.data.qpos[:7].copy(), self.data.qvel[:7].copy()

    def command(self, q):
        self.data.ctrl[:7] = q

    def step(self):
        for _ in range(self.substeps):
            mujoco.mj_step(self.model, self.data)


def test_adversarial_policy_cannot_take_the_arm_out_of_its_limits(panda):
    robot, limits = panda
    arm, flt = SimArm(robot), SafetyFilter(limits, SafetyConfig(control_period_s=1 / HZ, ramp_time_s=0.5))
    checker = InvariantChecker(limits.lower, limits.upper, limits.velocity, limits.acceleration, 1 / HZ,
                               flt.config.max_step_from_measured, flt.config.position_margin)
    rng, t, worst_outside = np.random.default_rng(0), 0, 0.0
    for i in range(400):
        t += NS // HZ
        q, dq = arm.state()
        cmd = q + rng.normal(0.0, 0.5, 7) if i % 40 < 30 else rng.uniform(limits.lower - 1, limits.upper + 1)
        if i % 17 == 0:
            cmd[3] = np.nan
        checker.see_measured(q, dq)
        out = flt.filter(cmd, q, dq, t, t)
        checker.check(out)
        assert out.positions is not None, out
        arm.command(out.positions)
        arm.step()
        q, _ = arm.state()
        assert np.all(q >= limits.lower) and np.all(q <= limits.upper)
        worst_outside = max(worst_outside, float(limits.workspace.violation(q)))
    assert worst_outside < 0.005                      # the box holds on the real arm up to servo tracking error
    assert flt.counters["workspace"] > 10 and flt.counters["hold_invalid_command"] == 24
    assert flt.counters["fault_tracking"] == 0        # a healthy arm never trips the tracking fault


def test_stalled_joint_states_bring_the_arm_to_rest(panda):
    robot, limits = panda
    arm, flt = SimArm(robot), SafetyFilter(limits, SafetyConfig(control_period_s=1 / HZ, ramp_time_s=0.0,
                                                                   observation_timeout_s=0.1))
    t, goal = 0, np.array(robot.home_qpos) + np.array([0.6, 0.3, -0.5, 0.4, 0.5, 0.3, 0.5])
    for _ in range(15):                               # moving towards the goal
        t += NS // HZ
        q, dq = arm.state()
        out = flt.filter(goal, q, dq, t, t)
        arm.command(out.positions)
        arm.step()
    assert np.abs(arm.state()[1]).max() > 0.3
    stamp, (q_stalled, dq_stalled) = t, arm.state()   # the joint-state stream stops here
    statuses = []
    for _ in range(40):
        t += NS // HZ
        out = flt.filter(goal, q_stalled, dq_stalled, stamp, t)
        statuses.append(out.status)
        arm.command(out.positions)
        arm.step()
    assert SafetyStatus.HOLD_STALE_OBSERVATION in statuses
    # hold starts once the data is older than the timeout (5 periods), then braking takes <= v_max / a_max
    assert statuses.index(SafetyStatus.HOLD_STALE_OBSERVATION) <= int(0.1 * HZ) + 1
    assert np.abs(arm.state()[1]).max() < 0.05         # physically at rest
