"""One Gymnasium environment for every arm task and both engines:
`gymnasium.make("robot_rl/panda-reach-v0", backend="mujoco"|"pybullet", obs_type="state"|"pixels"|"state+pixels",
action="joint"|"ee"|"ee_yaw", action_history=k)`.

Engine-independent parts live here: action -> joint position targets (sim.action_mapping's action spaces, the
same command a real arm takes over ros2_control; the task's default unless `action=` is given), action latency,
observation noise, observation layout (with `action_history=k`, the last k actions sent, oldest first, zeros
before the episode's first step: with action latency the state is not Markov without them), rewards, episode
length and domain randomisation. Episodes end by truncation after `episode_steps` control steps (no terminal
states), with `info["success"]` after every step.
"""
from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np

from sim import params as params_io
from sim.action_mapping import make_action_space
from sim.ik import quat_to_mat, solve_ik
from sim.randomization import default_ranges, sample_parameters, select_ranges
from sim.robot import RobotConfig, load_robot
from sim.tasks import TASKS, TaskState

OBS_TYPES = ("state", "pixels", "state+pixels")
BACKENDS = ("mujoco", "pybullet")


def make_backend(name: str, robot: RobotConfig, control_dt: float, physics_dt: float):
    if name == "mujoco":
        from sim.backends.mujoco_backend import MuJoCoBackend
        return MuJoCoBackend(robot, control_dt=control_dt, physics_dt=physics_dt)
    if name == "pybullet":
        from sim.backends.pybullet_backend import PyBulletBackend
        return PyBulletBackend(robot, control_dt=control_dt, physics_dt=physics_dt)
    raise ValueError(f"backend={name!r}: expected one of {BACKENDS}")


class ArmEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, task: str = "reach", reward: str = "dense", backend: str = "mujoco",
                 obs_type: str = "state", robot: str | Path | RobotConfig = "panda",
                 params: str | Path | Mapping | params_io.RobotParams | None = None,
                 randomize: bool | str | Sequence[str] = False,
                 control_hz: float = 20.0, physics_dt: float = 0.002, episode_steps: int | None = None,
                 render_size: int | tuple[int, int] = 64, camera: str = "front", render_mode: str | None = None,
                 action: str | None = None, action_history: int = 0):
        if task not in TASKS:
            raise ValueError(f"task={task!r}: expected one of {sorted(TASKS)}")
        if reward not in ("dense", "sparse"):
            raise ValueError(f"reward={reward!r}: expected 'dense' or 'sparse'")
        if obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type={obs_type!r}: expected one of {OBS_TYPES}")
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}: expected one of {BACKENDS}")
        if not control_hz > 0 or not physics_dt > 0:
            raise ValueError(f"control_hz={control_hz} and physics_dt={physics_dt} must be > 0")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}: expected None or 'rgb_array'")
        if isinstance(action_history, bool) or not isinstance(action_history, int) or action_history < 0:
            raise ValueError(f"action_history={action_history!r}: expected a whole number of actions >= 0")
        if action_history and obs_type == "pixels":
            raise ValueError(f"action_history={action_history} needs a state vector to carry the actions; "
                             f"obs_type='pixels' has none (use 'state+pixels')")
        self.robot = robot if isinstance(robot, RobotConfig) else load_robot(robot)
        self.task = TASKS[task]()
        self.task_name, self.reward_type, self.backend_name, self.obs_type = task, reward, backend, obs_type
        self.control_hz = float(control_hz)
        control_dt = 1.0 / self.control_hz
        physics_dt = control_dt / max(1, round(control_dt / physics_dt))   # whole physics steps per control step
        self.episode_steps = int(episode_steps or self.task.episode_steps)
        if self.episode_steps < 1:
            raise ValueError(f"episode_steps={episode_steps}: expected >= 1")
        self.render_width, self.render_height = ((render_size, render_size) if isinstance(render_size, int)
                                                 else (int(render_size[0]), int(render_size[1])))
        self.camera, self.render_mode = camera, render_mode
        self.metadata = {**self.metadata, "render_fps": self.control_hz}
        self.physics = make_backend(backend, self.robot, control_dt, physics_dt)
        home = np.array(self.robot.home_qpos)
        down = quat_to_mat(self.physics.forward_kinematics(home)[3:])
        self.start_qpos = solve_ik(self.physics.forward_kinematics, home, np.array(self.task.start_ee), down,
                                   self.robot.lower, self.robot.upper)
        self.action_mapping = make_action_space(action or self.task.default_action, self.robot,
                                                self.physics.forward_kinematics, self.start_qpos)
        self.action_latency = 0
        self.obs_noise = 0.0
        if params is not None:
            params_io.apply_parameters(self, params, robot=self.robot.name)
        nominal = {n: self.get_parameter(n) for n in self.parameter_names()}
        # randomize: True: every parameter with a range (the file's intervals, else the defaults); names or kinds
        # (a list or a comma-separated string, e.g. "action_latency,obs_noise"): only those
        selection = [n for n in randomize.split(",") if n] if isinstance(randomize, str) else randomize
        self.randomize = bool(selection)
        self.randomization_ranges: dict[str, tuple[float, float]] = {}
        if self.randomize:
            given = params_io.randomization_ranges(params_io.as_params(params, self.robot.name)) if params else {}
            self.randomization_ranges = (given or default_ranges(nominal)) if selection is True else \
                select_ranges(nominal, given, list(selection))

        n = self.robot.n_arm
        sizes = {"arm_qpos": n, "arm_qvel": n, "gripper_width": 1, "ee_pos": 3, "goal_pos": 3, "ee_to_goal": 3,
                 "object_pos": 3, "object_quat": 4, "ee_to_object": 3, "object_to_goal": 3}
        self.obs_layout: list[tuple[str, int]] = [(c, sizes[c]) for c in self.task.obs_components]
        self.action_history = action_history
        if action_history:
            self.obs_layout.append(("last_actions", action_history * self.action_mapping.dim))
        state_space = gym.spaces.Box(-np.inf, np.inf, (sum(s for _, s in self.obs_layout),), np.float32)
        pixel_space = gym.spaces.Box(0, 255, (3, self.render_height, self.render_width), np.uint8)
        self.observation_space = {"state": state_space, "pixels": pixel_space,
                                  "state+pixels": gym.spaces.Dict({"state": state_space, "pixels": pixel_space})
                                  }[obs_type]
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.action_mapping.dim,), np.float32)
        self._sent: deque[np.ndarray] = deque(maxlen=action_history)

        self.goal = np.zeros(3)
        self.last_joint_targets = np.array(self.robot.home_qpos, dtype=np.float64)
        self.last_gripper_target = self.task.initial_gripper_width
        self._pending: deque[tuple[np.ndarray, float]] = deque()
        self._applied = (self.last_joint_targets.copy(), self.last_gripper_target)
        self._steps = 0

    # --- named parameters (engine ones from the backend, latency and noise here) ---------------
    def parameter_names(self) -> list[str]:
        return list(self.physics.parameter_names()) + list(params_io.ENV_PARAMETERS)

    def get_parameter(self, name: str) -> float:
        if name == "action_latency":
            return float(self.action_latency)
        if name == "obs_noise":
            return float(self.obs_noise)
        return self.physics.get_parameter(name)

    def set_parameter(self, name: str, value: float) -> None:
        value = float(value)
        if name == "action_latency":
            if value < 0 or value != int(value):
                raise ValueError(f"action_latency must be a whole number of control steps >= 0, got {value}")
            self.action_latency = int(value)
        elif name == "obs_noise":
            if not value >= 0:
                raise ValueError(f"obs_noise must be >= 0, got {value}")
            self.obs_noise = value
        else:
            self.physics.set_parameter(name, value)

    # --- gym API -----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        if self.randomize:
            for name, value in sample_parameters(self.randomization_ranges, rng).items():
                self.set_parameter(name, value)
        noise = rng.uniform(-self.task.arm_noise, self.task.arm_noise, self.start_qpos.shape)
        arm = np.clip(self.start_qpos + noise,
                      self.robot.lower, self.robot.upper)
        object_pose = self.task.sample_object(rng)
        self.goal = self.task.sample_goal(rng, object_pose)
        width = self.task.initial_gripper_width
        self.physics.reset(arm, width, object_pose)
        self.physics.set_goal_marker(self.goal)
        self.last_joint_targets, self.last_gripper_target = arm.copy(), width
        self._applied = (arm.copy(), width)
        self._pending.clear()
        self._sent.clear()
        self._steps = 0
        state = self.task_state()
        return self._observation(), {"success": self.task.success(state), "distance": self.task.distance(state)}

    def step(self, action):
        targets, width = self.action_mapping.targets(action, self.last_joint_targets)
        self._sent.append(np.clip(np.asarray(action, dtype=np.float32).reshape(-1), -1.0, 1.0))
        self.last_joint_targets, self.last_gripper_target = targets, width
        # Action latency: the command reaches the arm `action_latency` control steps after the policy sent it.
        self._pending.append((targets, width))
        while len(self._pending) > self.action_latency + 1:
            self._pending.popleft()
        while len(self._pending) < self.action_latency + 1:
            self._pending.appendleft(self._applied)
        self._applied = self._pending.popleft()
        self.physics.command(*self._applied)
        self.physics.step()
        self._steps += 1
        state = self.task_state()
        success = self.task.success(state)
        reward = self.task.dense_reward(state) if self.reward_type == "dense" else self.task.sparse_reward(state)
        truncated = self._steps >= self.episode_steps
        return self._observation(), float(reward), False, truncated, {"success": success,
                                                                      "distance": self.task.distance(state)}

    def render(self):
        return self.physics.render(self.render_width, self.render_height, self.camera)

    def close(self):
        self.physics.close()

    # --- observations ------------------------------------------------------------------------
    def task_state(self) -> TaskState:
        obj = self.physics.object_pose()
        return TaskState(ee_pos=self.physics.ee_pose()[:3], gripper_width=self.physics.gripper_width(),
                         object_pos=obj[:3], object_quat=obj[3:], goal=self.goal.copy(),
                         fingers_touch_object=self.physics.fingers_touch_object())

    def _state_vector(self) -> np.ndarray:
        p = self.physics
        qpos = p.arm_qpos()
        if self.obs_noise > 0:
            qpos = qpos + self.np_random.normal(0.0, self.obs_noise, qpos.shape)
        ee = p.ee_pose()[:3]
        obj = p.object_pose()
        values = {"arm_qpos": qpos, "arm_qvel": p.arm_qvel(), "gripper_width": [p.gripper_width()], "ee_pos": ee,
                  "goal_pos": self.goal, "ee_to_goal": self.goal - ee, "object_pos": obj[:3],
                  "object_quat": obj[3:], "ee_to_object": obj[:3] - ee, "object_to_goal": self.goal - obj[:3]}
        if self.action_history:
            values["last_actions"] = self.last_actions()
        return np.concatenate([np.asarray(values[name], dtype=np.float32) for name, _ in self.obs_layout])

    def last_actions(self) -> np.ndarray:
        """The last `action_history` actions sent (clipped to [-1, 1]), oldest first, zeros before the first."""
        missing = (self.action_history - len(self._sent)) * self.action_mapping.dim
        return np.concatenate([np.zeros(missing, np.float32), *self._sent])

    def _pixels(self) -> np.ndarray:
        image = self.physics.render(self.render_width, self.render_height, self.camera)
        return np.ascontiguousarray(image.transpose(2, 0, 1))

    def _observation(self):
        if self.obs_type == "state":
            return self._state_vector()
        if self.obs_type == "pixels":
            return self._pixels()
        return {"state": self._state_vector(), "pixels": self._pixels()}
