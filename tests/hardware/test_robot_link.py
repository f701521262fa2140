"""hardware/robot_link.py over real DDS on loopback against a real sim_robot_node (in this process, so a test can
stall its joint states and read the simulated arm): episodes with resets (home reached, ready heard, rewards and
success from the task state of the new scene), teleop overriding the policy within one control period and
stopping with it, operator marks, stale joint states holding the arm with a fault until they return, clear errors
for a robot that does not answer (no joint states, wrong joint names, no ready), malformed teleop dropped, late
steps counted, and no command outside the joint limits under random actions. The policy's interface (PolicyIO,
SafetyLimits) is built for panda-reach from sim/ the way a bundle carries it (test_policy_io.py), without torch."""
import json
import threading
import time
from contextlib import ExitStack

import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401  (registers the environments)
from hardware import messages as m
from hardware.kinematics import KinematicChain
from hardware.nodes.sim_robot_node import SimRobot
from hardware.policy_io import PolicyIO, action_space_from_dict
from hardware.robot_link import RobotLinkConfig, RobotLinkError, open_link
from hardware.safety_config import SafetyConfig, limits_from_robot
from hardware.transport.dds import DdsExecutor, DdsNode, spin_in_thread
from sim.kinematic_chain import chain_from_mjcf

TASK = "robot_rl/panda-reach-v0"
# A shared 2-core machine can stall this process (the simulated arm included) for 100-300 ms; tests that are not
# about stale joint states tolerate that, the stale-state tests use the real timeout (0.1 s).
TOLERANT = SafetyConfig(control_period_s=0.05, observation_timeout_s=0.5)
STRICT = SafetyConfig(control_period_s=0.05)


@pytest.fixture(scope="module")
def reach():
    env = gym.make(TASK).unwrapped
    yield env
    env.close()


def interface(env, pixels_shape=None):
    """(io, limits, control_hz, home) as a panda-reach bundle carries them (action block and chain through JSON)."""
    robot = env.robot
    chain = KinematicChain.from_dict(json.loads(json.dumps(chain_from_mjcf(robot.description, robot.arm_joints,
                                                                           robot.ee_site))))
    actions = action_space_from_dict(json.loads(json.dumps(env.action_mapping.to_dict())), robot.lower.tolist(),
                                     robot.upper.tolist(), chain)
    io = PolicyIO(obs_layout=tuple(env.obs_layout), pixels_shape=pixels_shape, joint_names=tuple(robot.arm_joints),
                  gripper_joints=tuple(robot.gripper_joints), actions=actions, chain=chain,
                  action_history=env.action_history)
    return io, limits_from_robot(robot), env.control_hz, env.start_qpos.copy()


class Cell:
    """sim_robot_node and a tester node (teleop, operator, scene publishers; the arm commands recorded) on one
    executor thread; `link()` opens a RobotLink on its own node, as the robot environment does."""

    def __init__(self, domain, env, stack: ExitStack, **sim_params):
        self.domain, self.env, self.stack = domain, env, stack
        self.node = DdsNode("sim_robot", domain_id=domain, parameters={"task_rate_hz": 20.0, **sim_params})
        self.sim = SimRobot(self.node)
        self.test = DdsNode("tester", domain_id=domain)
        self.commands: list[tuple[float, np.ndarray]] = []
        self.test.create_subscription(m.Float64MultiArray, "/forward_position_controller/commands",
                                      lambda msg: self.commands.append((time.monotonic(), np.array(msg.data))))
        self.teleop = self.test.create_publisher(m.Float64MultiArray, "/teleop/action")
        self.operator = self.test.create_publisher(m.String, "/operator/episode")
        self.scene = self.test.create_publisher(m.Float64MultiArray, "/sim_robot/reset")
        self.estop = self.test.create_publisher(m.Bool, "/estop")
        self.estop_reset = self.test.create_publisher(m.Bool, "/estop_reset")
        self.executor = DdsExecutor([self.node, self.test])
        self.thread = spin_in_thread(self.executor)
        stack.callback(self.close)

    def link(self, pixels_shape=None, **config):
        io, limits, hz, home = interface(self.env, pixels_shape)
        config.setdefault("safety", TOLERANT)
        link = self.stack.enter_context(open_link(io, limits, hz, home, RobotLinkConfig(**config),
                                                  domain_id=self.domain))
        wait(lambda: all(p.matched_subscriptions() for p in self.test.publishers), "publishers matched")
        return link

    def close(self):
        self.executor.shutdown()
        self.thread.join(5)
        self.sim.close()


def component(env, obs, name):
    """One named part of the state vector (sim/env.py's layout)."""
    names = [n for n, _ in env.obs_layout]
    start = sum(size for _, size in env.obs_layout[:names.index(name)])
    return obs.state[start:start + dict(env.obs_layout)[name]].astype(float)


def wait(predicate, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


@pytest.fixture
def make_cell(domain, reach):
    with ExitStack() as stack:
        yield lambda **sim_params: Cell(domain, reach, stack, **sim_params)


@pytest.fixture
def cell(make_cell):
    return make_cell()


def test_a_short_episode_completes_with_a_reset(make_cell):
    cell = make_cell(task_rate_hz=2.0)   # slower than the control rate: the old scene's task state lingers
    link = cell.link()
    home = cell.env.start_qpos
    obs = link.reset()
    assert np.max(np.abs(obs.q - home)) <= 0.02
    assert cell.sim.episode == 2 and link.stats()["resets"] == 1   # the scene reset was asked for, ready heard
    np.testing.assert_allclose(component(cell.env, obs, "goal_pos"), cell.sim.env.goal, atol=1e-6)

    # The operator's cell puts the goal at the tool point: the task state says success, the reward says how close.
    cell.scene.publish(m.float64_multi_array(component(cell.env, obs, "ee_pos").tolist()))
    for _ in range(12):   # 0.6 s: a task state (every 0.5 s) of the new goal comes in that time
        out = link.step(np.zeros(8))
        assert out.fault is None and not out.intervention
    assert out.success
    assert out.reward == pytest.approx(-cell.sim.env.task.distance(cell.sim.env.task_state()), abs=5e-3)
    assert out.safety_status in ("ok", "limited")

    obs = link.reset()   # a new scene: its first step must not carry the old scene's success
    assert np.max(np.abs(obs.q - home)) <= 0.02
    out = link.step(np.zeros(8))
    assert not out.success and out.reward == pytest.approx(-cell.sim.env.task.distance(cell.sim.env.task_state()),
                                                           abs=0.02)
    stats = link.stats()
    assert stats["resets"] == 2 and len(stats["reset_s"]) == 2 and stats["commands_outside_limits"] == 0


def test_teleop_overrides_the_policy_within_one_period_and_stops_with_it(cell):
    link = cell.link()
    link.reset()
    policy = np.zeros(8)
    teleop = np.array([0.6, 0, 0, 0, 0, 0, 0, -1.0])
    for _ in range(3):
        assert not link.step(policy).intervention
    before = cell.commands[-1][1][0]
    overrides = []
    for _ in range(6):
        cell.teleop.publish(m.float64_multi_array(teleop))
        time.sleep(0.01)   # delivery on loopback; well inside the 50 ms period
        out = link.step(policy)
        overrides.append(out.intervention)
        np.testing.assert_allclose(out.applied_action, teleop)
    assert all(overrides)
    assert cell.commands[-1][1][0] > before + 0.05   # the arm went where the operator pushed, not where the policy said
    after = []
    for _ in range(6):   # teleop released: the policy is back once the last message is older than 0.15 s
        out = link.step(policy)
        after.append(out.intervention)
    assert after[-3:] == [False] * 3 and sum(after) <= 3
    np.testing.assert_allclose(out.applied_action, policy)
    assert link.stats()["interventions"] == 6 + sum(after)


def test_the_trajectory_interface_drives_the_arm(cell):
    trajectories = []
    cell.test.create_subscription(m.JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                                  trajectories.append)
    link = cell.link(command_interface="trajectory")
    obs = link.reset()
    assert np.max(np.abs(obs.q - cell.env.start_qpos)) <= 0.02 and not cell.commands
    for _ in range(10):
        out = link.step(np.array([0.8, 0, 0, 0, 0, 0, 0, 1.0]))
    assert out.fault is None and out.obs.q[0] > obs.q[0] + 0.05
    point = trajectories[-1].points[0]
    assert list(trajectories[-1].joint_names) == [f"panda_joint{i}" for i in range(1, 8)]
    assert m.ns_from_time(point.time_from_start) == 50_000_000   # one control period


def test_pixel_observations_are_stacked_camera_frames(make_cell):
    cell = make_cell(publish_images=True, image_width=32, image_height=24, image_rate_hz=20.0)
    link = cell.link(pixels_shape=(6, 24, 32))   # 2 frames; connect() waits for the first image
    obs = link.reset()
    assert obs.pixels.shape == (6, 24, 32) and obs.pixels.dtype == np.uint8 and obs.pixels.std() > 5
    np.testing.assert_array_equal(obs.pixels[:3], obs.pixels[3:])   # an episode starts with its first frame twice
    for _ in range(4):
        out = link.step(np.array([0.8, 0.5, 0, 0, 0, 0, 0, 1.0]))
    assert out.fault is None and not np.array_equal(out.obs.pixels[:3], out.obs.pixels[3:])   # the arm moved


def test_an_operator_mark_ends_the_episode(cell):
    link = cell.link()
    link.reset()
    assert link.step(np.zeros(8)).operator is None
    cell.operator.publish(m.String(data="hello"))   # not a mark: dropped and counted
    cell.operator.publish(m.String(data="failure"))
    time.sleep(0.02)
    assert link.step(np.zeros(8)).operator == "failure"
    assert link.step(np.zeros(8)).operator is None   # a mark is reported once
    assert link.stats()["malformed"] == {"/operator/episode": 1}


def test_stale_joint_states_hold_the_arm_with_a_fault_until_they_return(cell):
    link = cell.link(safety=STRICT)
    link.reset()
    action = np.full(8, 0.5)
    for _ in range(3):
        link.step(action)
    cell.sim.publish_joint_states = False
    stalled = time.monotonic()
    outs = [(link.step(action), time.time_ns()) for _ in range(12)]   # 0.6 s of a policy still asking to move
    faults = [out.fault for out, _ in outs]
    for out, returned_ns in outs:   # never stale data as a good step (checked when observed, a little earlier)
        assert out.fault is not None or returned_ns - out.obs.stamp_ns <= 0.1e9 + 0.02e9
    # stale within the observation timeout (0.1 s) plus a period, and never a good step after
    first = next(i for i, f in enumerate(faults) if f is not None)
    assert first <= 3 and all(f is not None for f in faults[first:]), faults
    assert any("stale" in f for f in faults[first:])
    held = [q for t, q in cell.commands if t > stalled + 0.1 + 0.05 + 0.29 + 0.05]   # + braking from full speed
    assert len(held) >= 2 and all(np.array_equal(q, held[0]) for q in held)   # no new targets beyond the hold
    q_held = cell.sim.physics.arm_qpos().copy()
    cell.sim.publish_joint_states = True
    resumed = [link.step(action).fault for _ in range(4)]
    assert resumed[-1] is None and resumed[-2] is None, resumed
    assert np.max(np.abs(cell.sim.physics.arm_qpos() - q_held)) > 1e-3   # moving again
    stats = link.stats()
    assert sum(stats["faults"].values()) >= 9 and stats["commands_outside_limits"] == 0


def test_no_joint_states_is_an_error_naming_the_topic(domain, reach):
    io, limits, hz, home = interface(reach)
    start = time.monotonic()
    with pytest.raises(RobotLinkError, match=r"/joint_states: no joint states within connect_timeout_s=0.5"):
        with open_link(io, limits, hz, home, RobotLinkConfig(connect_timeout_s=0.5), domain_id=domain):
            pass
    assert time.monotonic() - start < 3


def test_wrong_joint_names_are_an_error_naming_expected_and_got(cell):
    fr3 = tuple(f"fr3_joint{i}" for i in range(1, 8))
    with pytest.raises(RobotLinkError) as err:
        cell.link(hardware_joint_names=fr3, connect_timeout_s=1.0)
    assert f"expected {list(fr3)}" in str(err.value) and "got ['panda_joint1'" in str(err.value)


def test_a_reset_whose_ready_never_comes_holds_and_names_the_topic(cell):
    link = cell.link(scene_ready_topic="/cell/ready", reset_timeout_s=0.5)
    with pytest.raises(RobotLinkError, match=r"/cell/ready: no ready .* within reset_timeout_s=0.5 s"):
        link.reset()
    failed = time.monotonic()
    waiting = [q for t, q in cell.commands if failed - 0.45 < t <= failed]
    assert len(waiting) >= 5 and all(np.array_equal(q, waiting[0]) for q in waiting)   # held every period
    q = cell.sim.physics.arm_qpos().copy()
    assert np.max(np.abs(q - cell.env.start_qpos)) <= 0.02   # the home move had finished: it holds there
    time.sleep(0.3)
    np.testing.assert_allclose(cell.sim.physics.arm_qpos(), q, atol=1e-3)
    assert link.stats()["safety"].get("hold_policy_error", 0) >= 5   # the holds went through the filter


def test_a_reset_without_joint_states_holds_and_names_the_topic(cell):
    link = cell.link(reset_timeout_s=0.5, safety=SafetyConfig(control_period_s=0.05, ramp_time_s=0.1))
    link.reset()
    for _ in range(3):
        link.step(np.full(8, 0.5))
    cell.sim.publish_joint_states = False   # the robot's connection is lost between episodes
    start = time.monotonic()
    with pytest.raises(RobotLinkError, match=r"did not reach home .*no fresh joint states; joint states on "
                                             r"/joint_states"):
        link.reset()
    assert time.monotonic() - start < 2.0
    q = cell.sim.physics.arm_qpos().copy()
    time.sleep(0.2)
    np.testing.assert_allclose(cell.sim.physics.arm_qpos(), q, atol=1e-3)   # held, not moving on its own


def test_malformed_teleop_never_crashes_or_stalls_the_link(cell):
    link = cell.link()
    link.reset()
    bad = ([], [0.1] * 7, [float("nan")] * 8, [float("inf")] + [0.0] * 7, [0.0] * 400)   # the last: > 1 KiB
    for payload in bad:
        cell.teleop.publish(m.float64_multi_array(payload))
        out = link.step(np.zeros(8))
        assert not out.intervention and out.fault is None and not out.late
    wait(lambda: link.stats()["malformed"].get("/teleop/action", 0) == 4, "malformed teleop counted")
    assert link.stats()["dropped_samples"]["/teleop/action"] == {"oversized": 1}
    assert link.step(np.zeros(8)).fault is None   # still hearing joint states: the executor is alive


def test_a_late_step_counts_a_missed_deadline_and_reanchors(cell):
    link = cell.link()
    link.reset()
    assert not link.step(np.zeros(8)).late
    time.sleep(0.12)
    assert link.step(np.zeros(8)).late
    outs = [link.step(np.zeros(8)) for _ in range(3)]
    assert not any(o.late for o in outs) and link.stats()["missed_deadlines"] == 1


def test_no_command_outside_the_joint_limits_under_random_actions(cell):
    link = cell.link()
    link.reset()
    rng = np.random.default_rng(0)
    bias = np.where(rng.random(8) < 0.5, -0.7, 0.7)   # push toward the limits
    for _ in range(50):
        out = link.step(np.clip(bias + rng.normal(0, 0.5, 8), -1.3, 1.3))
        assert out.fault is None
    limits = limits_from_robot(cell.env.robot)
    sent = np.array([q for _, q in cell.commands])
    assert len(sent) >= 50
    assert np.all(sent >= limits.lower) and np.all(sent <= limits.upper)
    assert link.stats()["commands_outside_limits"] == 0


def test_the_estop_holds_at_once_and_only_the_operator_clears_it(cell):
    link = cell.link()
    link.reset()
    link.step(np.full(8, 0.5))
    sent = len(cell.commands)
    cell.estop.publish(m.Bool(data=True))
    wait(lambda: link.stats()["estop_latched"], "e-stop latched")
    wait(lambda: len(cell.commands) > sent, "the hold sent at once, between steps")
    assert link.step(np.full(8, 0.5)).fault.startswith("hold_estop")
    with pytest.raises(RobotLinkError, match="e-stop latched; the operator clears it with True on /estop_reset"):
        link.reset()
    cell.estop.publish(m.Bool(data=False))
    cell.estop_reset.publish(m.Bool(data=True))
    wait(lambda: not link.stats()["estop_latched"], "e-stop reset")
    obs = link.reset()   # the operator's reset clears it; the next episode starts at home
    assert np.max(np.abs(obs.q - cell.env.start_qpos)) <= 0.02 and link.step(np.zeros(8)).fault is None


def test_a_silent_estop_source_is_an_error_at_connect(cell):
    with pytest.raises(RobotLinkError, match=r"e-stop sources on /estop/<source> .*pendant: not heard yet"):
        cell.link(estop_sources=("pendant",), connect_timeout_s=1.0)


def test_estop_sources_heartbeat_press_and_only_a_source_resets(cell):
    """policy_node's robot e-stop: a named source heartbeats; silent or pressed holds; only its reset clears."""
    heartbeat = cell.test.create_publisher(m.Bool, "/estop/pendant")
    source_reset = cell.test.create_publisher(m.Bool, "/estop_reset/pendant")
    state = {"pressed": False, "beating": True}

    def beat():
        while state["beating"]:
            heartbeat.publish(m.Bool(data=state["pressed"]))
            time.sleep(0.05)

    beater = threading.Thread(target=beat, daemon=True)
    beater.start()
    try:
        link = cell.link(estop_sources="pendant", estop_heartbeat_timeout_s=0.3)
        link.reset()
        assert link.step(np.zeros(8)).fault is None
        state["pressed"] = True
        time.sleep(0.1)
        assert link.step(np.zeros(8)).fault.startswith("hold_estop")
        state["pressed"] = False
        time.sleep(0.1)
        cell.estop_reset.publish(m.Bool(data=True))   # the plain reset topic names no source: refused
        time.sleep(0.1)
        assert link.step(np.zeros(8)).fault.startswith("hold_estop")
        with pytest.raises(RobotLinkError, match=r"e-stop latched.*/estop_reset/<source>"):
            link.reset()
        wait(lambda: source_reset.matched_subscriptions(), "source reset matched")
        source_reset.publish(m.Bool(data=True))
        wait(lambda: not link.stats()["estop_latched"], "the source's reset")
        link.reset()
        assert link.step(np.zeros(8)).fault is None
        state["beating"] = False   # the pendant's cable is cut: silent counts as pressed
        beater.join(1)
        time.sleep(0.4)
        out = link.step(np.zeros(8))
        assert out.fault.startswith("hold_estop") and "silent" in link.stats()["estop_reasons"][0]
        assert link.stats()["safety"]["reset_refused"] == 1
    finally:
        state["beating"] = False


def test_config_from_dict_names_the_field():
    config = RobotLinkConfig.from_dict({"hardware_joint_names": "a, b", "home_speed": 1, "safety":
                                        {"observation_timeout_s": 0.2}})
    assert config.hardware_joint_names == ("a", "b") and config.safety.observation_timeout_s == 0.2
    for bad, match in (({"home_sped": 1.0}, "unknown field.*home_sped"), ({"home_speed": "fast"}, "home_speed"),
                       ({"home_speed": -1.0}, "home_speed: expected a number > 0"),
                       ({"command_interface": "torque"}, "command_interface"),
                       ({"safety": {"control_period_s": 0.1}}, "control_period_s is 1 / control_hz"),
                       ({"safety": {"observation_timeout": 0.1}}, "unknown field"),
                       ({"estop_sources": [1]}, "estop_sources: expected a list of names"),
                       ({"estop_sources": "pendant, pendant"}, "source names repeat")):
        with pytest.raises(RobotLinkError, match=match):
            RobotLinkConfig.from_dict(bad, "robot.yaml")
    with pytest.raises(RobotLinkError, match="robot.yaml"):
        RobotLinkConfig.from_dict([], "robot.yaml")


def test_step_timing_holds_the_period(cell):
    """Over 2 s at 20 Hz with a learner-sized pause between steps: no missed deadline, observations on time."""
    link = cell.link()
    link.reset()
    periods = []
    last = time.monotonic()
    for _ in range(40):
        time.sleep(0.01)   # the actor's own work between steps
        out = link.step(np.zeros(8))
        now = time.monotonic()
        periods.append(now - last)
        last = now
    assert np.median(periods) == pytest.approx(0.05, abs=0.005)
    assert link.stats()["missed_deadlines"] <= 1   # a shared 2-core machine may deschedule us once

