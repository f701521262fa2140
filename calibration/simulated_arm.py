"""A simulated "real" arm for calibration: sim/'s MuJoCo scene with a parameters file the fit never sees.

It plays position commands the way sim.env does (the command reaches the servos `action_latency` control
steps late; joint-position observations carry `obs_noise`), publishes joint states faster than commands, as a
robot's joint_state_broadcaster does, and returns what a `ros2 bag record` of /joint_states and the command
topic would hold. This stands in for the arm only; the recording written from it is a real rosbag2 file.
"""
from __future__ import annotations

import numpy as np

from calibration.recording_io import JointRecording

EPOCH_NS = 1_700_000_000 * 1_000_000_000     # recordings start at a plausible wall-clock time


def run_commands(robot, commands: np.ndarray, command_hz: float, params=None, state_hz: float = 100.0,
                 physics_dt: float = 0.002, gripper_width: float = 0.0, velocity_noise: float = 0.0,
                 settle_s: float = 0.5, seed: int = 0, command_topic: str = "/forward_position_controller/commands",
                 object_pose: np.ndarray | None = None) -> JointRecording:
    """Play (K, n_arm) joint targets at `command_hz` on the arm (starting at rest at commands[0]), then hold
    the last target for `settle_s`; joint states at `state_hz`."""
    from sim.backends.mujoco_backend import MuJoCoBackend
    from sim.params import ENV_PARAMETERS, RobotParams, apply_parameters, as_params

    commands = np.asarray(commands, float)
    if commands.ndim != 2 or commands.shape[1] != robot.n_arm:
        raise ValueError(f"commands must be (K, {robot.n_arm}) joint targets, got {commands.shape}")
    per_command = round(state_hz / command_hz)
    if per_command < 1 or abs(per_command * command_hz - state_hz) > 1e-6:
        raise ValueError(f"state_hz={state_hz} must be a whole multiple of command_hz={command_hz}")
    backend = MuJoCoBackend(robot, control_dt=1.0 / state_hz, physics_dt=physics_dt)
    latency, noise = 0, 0.0
    if params is not None:
        params = as_params(params, robot.name)
        engine = RobotParams(params.robot, {n: p for n, p in params.parameters.items() if n not in ENV_PARAMETERS},
                             params.source)
        apply_parameters(backend, engine, robot.name)
        if "action_latency" in params.parameters:
            latency = int(params.parameters["action_latency"].value)
        if "obs_noise" in params.parameters:
            noise = float(params.parameters["obs_noise"].value)
    rng = np.random.default_rng(seed)
    if object_pose is None:
        object_pose = np.array([0.5, 0.0, 0.02, 1.0, 0.0, 0.0, 0.0])
    backend.reset(commands[0], gripper_width, object_pose)
    hold = commands[0].copy()
    settle = int(round(settle_s * command_hz))
    schedule = np.concatenate([commands, np.repeat(commands[-1:], settle, axis=0)])
    state_dt_ns = int(round(1e9 / state_hz))
    stamps, positions, velocities, fingers = [], [], [], []
    cmd_stamps = []

    def observe(i: int) -> None:
        stamps.append(EPOCH_NS + i * state_dt_ns)
        positions.append(backend.arm_qpos() + rng.normal(0.0, noise, robot.n_arm) * (noise > 0))
        velocities.append(backend.arm_qvel() + rng.normal(0.0, velocity_noise, robot.n_arm) * (velocity_noise > 0))
        fingers.append(backend.gripper_width() / max(len(robot.gripper_joints), 1))

    step = 0
    for k in range(len(schedule)):
        observe(step)
        if k < len(commands):
            cmd_stamps.append(EPOCH_NS + step * state_dt_ns)
        applied = schedule[k - latency] if k >= latency else hold
        backend.command(applied, gripper_width)
        for sub in range(per_command):
            backend.step()
            step += 1
            if sub < per_command - 1:
                observe(step)
    observe(step)
    extra = {name: np.asarray(fingers) for name in robot.gripper_joints}
    return JointRecording(tuple(robot.arm_joints), np.asarray(stamps, np.int64), np.asarray(positions),
                          np.asarray(velocities), np.asarray(cmd_stamps, np.int64), commands.copy(), command_topic,
                          extra)
