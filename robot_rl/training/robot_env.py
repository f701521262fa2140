"""The robot as a Gymnasium environment: `RobotEnv` over a hardware.robot_link.RobotLink (ROS 2 topics, over DDS
or rclpy), with the observations, spaces, episode length and reward of the simulated task it stands in for.

What the robot observes and commands comes from the task's simulated environment through the same two
functions a policy bundle goes through (robot_rl.export.robot_interface -> hardware.bundle.robot_interface:
observation layout, action space, joint names, limits, safety, control rate), so learning on the robot sees exactly
what a deployed bundle would. The link runs policy_node's rules: the action mapping, the safety filter, stale
data and e-stop holds, the teleop override.

An episode ends by truncation (never termination: the arm tasks have no terminal states) at the task's episode
length, when the operator marks it (success / failure / end), or on a fault (stale joint states, e-stop, a safety
fault, a lost connection): the arm holds, `info["fault"]` says why, and that step's data must not be trained on
(robot_rl/training/robot_run.py drops it).

Reward and success: the task state topic's dense or sparse reward (the task's name says which: panda-push-sparse
is sparse), or a detector the user plugs in with `detector=module:callable`: a callable
`(observation: hardware.robot_link.Observation, task_state: dict | None) -> (reward, success)` (e.g. a binary
success classifier on camera images, as HIL-SERL trains one).
"""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import gymnasium as gym
import numpy as np

from robot_rl.envs import EnvInfo


class RobotEnvError(ValueError):
    """A task or detector the robot environment cannot run."""


@dataclass
class RobotSetup:
    """What the robot link needs, from the simulated task it stands in for."""
    info: EnvInfo
    interface: dict                   # bundle.json's robot-interface part (robot_rl.export.robot_interface)
    io: object                        # hardware.policy_io.PolicyIO
    limits: object                    # hardware.safety_config.SafetyLimits
    control_hz: float
    home: np.ndarray                  # the task's start posture (ArmEnv.start_qpos)
    reward: str                       # dense | sparse
    observation_space: gym.spaces.Dict
    action_space: gym.spaces.Box


def robot_setup(task: str, obs_type: str = "state", frame_stack: int = 1, action: str = "",
                action_history: int = 0) -> RobotSetup:
    """The task's simulated environment, built once for its description and closed again."""
    from hardware.bundle import BundleError, robot_interface as parse_interface
    from robot_rl.envs import make_env
    from robot_rl.export import ExportError, robot_interface

    if task.startswith(("gym:", "dmc:", "mw:")):
        raise RobotEnvError(f"task={task!r}: learning on the robot needs a sim/ arm task (panda-reach, panda-push, "
                            f"...) whose joints, observation layout and action space the robot shares")
    kwargs = {**({"action": action} if action else {}), **({"action_history": action_history} if action_history
                                                          else {})}
    env, info = make_env(task, obs_type, seed=0, frame_stack=frame_stack, **kwargs)
    try:
        home = np.asarray(env.unwrapped.start_qpos, dtype=float).copy()
        observation_space, action_space = env.observation_space, env.action_space
    finally:
        env.close()
    try:
        interface = robot_interface(info, source=f"task={task}")
        io, limits, control_hz = parse_interface(interface, f"task={task!r} robot interface")
    except (ExportError, BundleError) as err:
        raise RobotEnvError(str(err)) from None
    return RobotSetup(info=info, interface=interface, io=io, limits=limits, control_hz=control_hz, home=home,
                      reward="sparse" if task.endswith("-sparse") else "dense",
                      observation_space=observation_space, action_space=action_space)


def load_detector(spec: str) -> Callable | None:
    """`module:callable` -> the callable (empty: None, the task state topic's reward and success)."""
    if not spec:
        return None
    module, _, name = spec.partition(":")
    if not module or not name:
        raise RobotEnvError(f"detector={spec!r}: expected module:callable (e.g. my_cell.detectors:cube_on_goal)")
    try:
        target = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise RobotEnvError(f"detector={spec!r}: cannot load it ({type(err).__name__}: {err})") from None
    if not callable(target):
        raise RobotEnvError(f"detector={spec!r}: {name} is not callable; expected "
                            f"(observation, task_state) -> (reward, success)")
    return target


class RobotEnv(gym.Env):
    """One robot behind the Gymnasium API; `info` after each step: success, intervention, applied_action,
    operator, fault, late, safety_status."""

    metadata = {"render_modes": []}

    def __init__(self, link, setup: RobotSetup):
        self.link, self.setup = link, setup
        self.observation_space, self.action_space = setup.observation_space, setup.action_space
        self.keys = list(setup.info.obs_spec)
        self.episode_length = setup.info.episode_length
        self.steps = 0
        self.last_observation = None          # hardware.robot_link.Observation (q, stamp) for recordings

    def _obs(self, observation) -> dict[str, np.ndarray]:
        self.last_observation = observation
        out = {}
        for key in self.keys:
            value = getattr(observation, key)
            shape, dtype = self.setup.info.obs_spec[key]
            if value is None or tuple(np.shape(value)) != tuple(shape):
                raise RobotEnvError(f"robot observation {key!r}: got shape {None if value is None else np.shape(value)}"
                                    f", the task's environment has {tuple(shape)}")
            out[key] = np.asarray(value, dtype=dtype)
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.steps = 0
        return self._obs(self.link.reset()), {}

    def step(self, action):
        out = self.link.step(np.asarray(action, dtype=np.float64))
        self.steps += 1
        # the operator's mark overrides the detector/task state; "end" stops without a verdict
        success = {"success": True, "failure": False}.get(out.operator, bool(out.success))
        truncated = self.steps >= self.episode_length or out.operator is not None or out.fault is not None
        info = {"success": success, "intervention": bool(out.intervention),
                "applied_action": np.asarray(out.applied_action, dtype=np.float32), "operator": out.operator,
                "fault": out.fault, "late": bool(out.late), "safety_status": out.safety_status}
        return self._obs(out.obs), float(out.reward), False, truncated, info

    def hold(self) -> None:
        self.link.hold()


@contextmanager
def open_robot_env(setup: RobotSetup, link_config, transport: str = "dds", domain_id: int | None = None,
                   detector: Callable | None = None, node_name: str = "robot_env") -> Iterator[RobotEnv]:
    """Connect to the robot (RobotLinkError when its joint states do not come or name other joints) and hold the
    arm when the block ends, however it ends."""
    from hardware.robot_link import open_link

    with open_link(setup.io, setup.limits, setup.control_hz, setup.home, link_config, transport=transport,
                   domain_id=domain_id, node_name=node_name, reward=setup.reward, detector=detector) as link:
        yield RobotEnv(link, setup)
