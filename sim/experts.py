"""Scripted experts for reach, push and pick-and-place: the demonstrations for MoDem come from them.

Engine-independent: they read the simulator state through the backend interface (end-effector pose, object
pose, gripper width, contacts) and decide a tool-point target, which becomes an action in the env's action space:
in the Cartesian ones (`action=ee`, `ee_yaw`) the tool-point step itself; in the joint space a damped
least-squares step of sim.ik on a Jacobian taken by finite differences of `backend.forward_kinematics`. So the
same code drives MuJoCo and PyBullet. They are
stateless (each action depends only on the present state), so they can take over mid-episode.

Usage: `expert = Expert(env); action = expert(env)`, or `expert_action(env)`; `evaluate_expert(task)` for success rates.
"""
from __future__ import annotations

import numpy as np

from sim import scene
from sim.action_mapping import ToolPointActions
from sim.ik import clip_norm, dls_step, quat_to_mat, rot_z, yaw_about

MAX_POS_STEP = 0.04          # m of end-effector motion asked for per control step
MAX_PUSH_STEP = 0.02         # m per control step while pushing (faster kicks the cube away)
MAX_ROT_STEP = 0.3           # rad of end-effector rotation asked for per control step
POSTURE_GAIN = 0.05          # pull towards the home posture in the Jacobian's null space
# Fraction of the remaining error corrected per control step. Below 1 because the targets integrate and the
# servos (and any action latency) delay the response: with one step of delay, x' = x - K e(t-1) rings at K = 1
# and is well damped at K = 0.5.
TRACKING_GAIN = 0.5
SAFE_HEIGHT = scene.TABLE_HEIGHT + 0.10   # travel height above the table (tool centre point), m
PUSH_HEIGHT = scene.TABLE_HEIGHT + 0.02   # tool centre point height while pushing (fingertips ~1 cm above)
H = scene.OBJECT_HALF_SIZE
FINGER_REACH = 0.023      # m, farthest point of the closed Franka Hand fingers from the tool centre axis


def yaw_of(quat: np.ndarray) -> float:
    w, x, y, z = quat
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


class Expert:
    """Scripted policy for the env's task; call with the environment, returns a normalised action."""

    def __init__(self, env, noise: float = 0.0, seed: int | None = None):
        self.env = env.unwrapped
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        robot = self.env.robot
        home_pose = self.env.physics.forward_kinematics(np.array(robot.home_qpos))
        self.down = quat_to_mat(home_pose[3:])   # gripper pointing down, fingers as at the home pose

    def __call__(self, env=None) -> np.ndarray:
        env = self.env if env is None else env.unwrapped
        task = env.task_name
        max_step = MAX_POS_STEP
        if task == "reach":
            target, yaw, grip = env.goal, 0.0, 1.0
        elif task == "push":
            target, yaw, grip, max_step = self._push(env)
        elif task == "pick":
            target, yaw, grip = self._pick(env)
        else:
            raise ValueError(f"no scripted expert for task {task!r}")
        action = np.append(self._arm_action(env, target, yaw, max_step), grip)
        if self.noise > 0:
            action = action + self.rng.normal(0.0, self.noise, action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    # --- task logic: (tool centre point target, gripper yaw, gripper action) --------------------
    def _push(self, env) -> tuple[np.ndarray, float, float, float]:
        p = env.physics
        ee = p.ee_pose()[:3]
        obj = p.object_pose()
        to_goal = env.goal[:2] - obj[:2]
        dist = np.linalg.norm(to_goal)
        d = to_goal / max(dist, 1e-6)
        # The hand keeps its yaw (turning the wrist costs more steps than the push); the closed fingers are a
        # 2 x 4 cm block, at most FINGER_REACH from the tool centre in any direction. The tool centre waits this far
        # behind the cube's centre: the cube's corner (H * sqrt 2), the fingers' reach and a margin, so
        # descending there never lands on the cube.
        offset = H * np.sqrt(2.0) + FINGER_REACH + 0.01
        behind = obj[:2] - d * offset
        rel = ee[:2] - obj[:2]
        along, lateral = float(rel @ d), float(rel @ np.array([-d[1], d[0]]))
        low = ee[2] < PUSH_HEIGHT + 0.02     # fingertips well below the cube top
        yaw, closed = 0.0, -1.0
        if dist < 0.015 and along < 0:
            return ee.copy(), yaw, closed, MAX_POS_STEP                     # there: stop pushing
        if low and along < -(H + 0.005) and abs(lateral) < 0.02:
            # Behind the cube: push along the line to the goal, steering back onto it; slower near the goal
            # (the cube slides on).
            return np.array([*(behind + d * min(0.06, dist)), PUSH_HEIGHT]), yaw, closed, MAX_PUSH_STEP
        if low and along < -(offset - 0.005):
            return np.array([*behind, PUSH_HEIGHT]), yaw, closed, MAX_POS_STEP   # behind, off the line: sidestep
        if np.linalg.norm(ee[:2] - behind) < 0.012:
            return np.array([*behind, PUSH_HEIGHT]), yaw, closed, MAX_POS_STEP   # above the start: descend
        if ee[2] < SAFE_HEIGHT - 0.03 and np.linalg.norm(rel) < offset + 0.04:
            return np.array([ee[0], ee[1], SAFE_HEIGHT]), yaw, closed, MAX_POS_STEP   # clear the cube first
        return np.array([*behind, SAFE_HEIGHT]), yaw, closed, MAX_POS_STEP

    def _pick(self, env) -> tuple[np.ndarray, float, float]:
        p = env.physics
        ee = p.ee_pose()[:3]
        obj = p.object_pose()
        yaw = (yaw_of(obj[3:]) + np.pi / 4) % (np.pi / 2) - np.pi / 4
        width = p.gripper_width()
        xy_err = np.linalg.norm(ee[:2] - obj[:2])
        z_err = ee[2] - obj[2]
        held = width < 2 * H + 0.006 and width > 2 * H - 0.01 and np.linalg.norm(ee - obj[:3]) < 0.02
        if held and (p.fingers_touch_object() or obj[2] > scene.TABLE_HEIGHT + H + 0.005):
            return env.goal + (ee - obj[:3]), yaw, -1.0       # carry: the cube, not the hand, to the goal
        if xy_err < 0.012 and abs(z_err) < 0.008:
            return obj[:3].copy(), yaw, -1.0                  # in place: close
        if width < 2 * H + 0.02 and xy_err < 0.02 and abs(z_err) < 0.02:
            return obj[:3].copy(), yaw, -1.0                  # closing: keep closing
        if xy_err < 0.012:
            return obj[:3].copy(), yaw, 1.0                   # above: descend, open
        if ee[2] < obj[2] + 0.04:
            return np.array([ee[0], ee[1], obj[2] + 0.08]), yaw, 1.0   # too low next to it: go up first
        return obj[:3] + np.array([0.0, 0.0, 0.08]), yaw, 1.0

    # --- tool-point target -> action --------------------------------------------------------
    def _arm_action(self, env, target: np.ndarray, yaw: float, max_step: float = MAX_POS_STEP) -> np.ndarray:
        if isinstance(env.action_mapping, ToolPointActions):
            return self._tool_action(env, env.action_mapping, target, yaw, max_step)
        return self._joint_action(env, target, yaw, max_step)

    @staticmethod
    def _tool_action(env, space: ToolPointActions, target: np.ndarray, yaw: float, max_step: float) -> np.ndarray:
        """The tool-point step: TRACKING_GAIN of the way from the commanded tool pose (that of the previous joint
        targets, which the mapping adds the step to) to the target. Not from the measured pose: with action
        latency that lags the commands, and integrating its error overshoots (push fell from 100 % to 40 % at one
        step of latency)."""
        pose = env.physics.forward_kinematics(env.last_joint_targets)
        step = clip_norm(TRACKING_GAIN * (np.asarray(target, float) - pose[:3]), max_step)
        action = step / space.config.max_position_step
        if space.yaw:
            measured = yaw_about(quat_to_mat(pose[3:]), space.tool_rotation)
            error = (yaw - measured + np.pi) % (2 * np.pi) - np.pi
            action = np.append(action, TRACKING_GAIN * error / space.config.max_yaw_step)
        return action / max(1.0, float(np.max(np.abs(action))))   # scale as a whole: keep the direction

    def _joint_action(self, env, target: np.ndarray, yaw: float, max_step: float) -> np.ndarray:
        p, robot = env.physics, env.robot
        q = p.arm_qpos()
        dq = dls_step(p.forward_kinematics, q, target, rot_z(yaw) @ self.down, np.array(robot.home_qpos),
                      max_step, MAX_ROT_STEP, POSTURE_GAIN, TRACKING_GAIN)
        # Integrate on the previous targets (no steady-state offset) unless the arm lags far behind them.
        base = env.last_joint_targets if np.max(np.abs(env.last_joint_targets - q)) < 0.1 else q
        desired = np.clip(base + dq, robot.lower, robot.upper)
        action = (desired - env.last_joint_targets) / robot.max_joint_step
        return action / max(1.0, float(np.max(np.abs(action))))   # scale as a whole: keep the direction


def expert_action(env) -> np.ndarray:
    """One action of the scripted expert for `env`'s task (stateless; builds the helper once per env)."""
    unwrapped = env.unwrapped
    expert = getattr(unwrapped, "_scripted_expert", None)
    if expert is None:
        expert = unwrapped._scripted_expert = Expert(unwrapped)
    return expert(unwrapped)


def evaluate_expert(task: str, backend: str = "mujoco", episodes: int = 20, seed: int = 0, noise: float = 0.0,
                    **env_kwargs) -> float:
    """Fraction of `episodes` (seeds seed, seed+1, ...) in which the expert ends with info["success"]."""
    import gymnasium as gym

    import sim

    env = gym.make(sim.env_id(task), backend=backend, **env_kwargs)
    expert = Expert(env, noise=noise, seed=seed)
    successes = 0
    try:
        for episode in range(episodes):
            env.reset(seed=seed + episode)
            info = {"success": False}
            for _ in range(env.unwrapped.episode_steps):
                info = env.step(expert(env))[4]
            successes += bool(info["success"])
    finally:
        env.close()
    return successes / episodes
