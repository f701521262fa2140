"""`robot-rl sysid excite robot=... out=excitation.yaml`: design an excitation trajectory in the current simulator
(calibration.excitation: Fourier series inside the arm's limits, coefficients chosen to maximise the Fisher
information of the unknown parameters) and run it on the arm while a rosbag2 recording is written.

run_on=sim plays it on a simulated arm with a hidden parameters file (`real_params=`) and writes the recording
with rosbags; run_on=none only writes the design. run_on=dds plays it over DDS (ROS 2 wire conventions) on the
forward position controller's topic while the recorder node writes the bag (calibration/dds_excitation.py):
dds_arm=real drives the arm whose ros2_control runs on the domain, dds_arm=sim starts sim_robot_node with
`real_params=` as its hidden parameters, so the whole loop runs without hardware.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.arm_model import FIT_KINDS
from calibration.command_errors import CommandError

FORMAT = "robot_rl.excitation"
VERSION = 1


@dataclass
class Config:
    robot: str = "panda"
    out: str = "excitation.yaml"
    params: str = ""                     # current simulator parameters (the design's nominal); empty: description
    joints: str = ""                     # joints to excite, comma-separated; empty: all (the others hold home)
    kinds: str = ",".join(FIT_KINDS)     # parameters whose information is maximised
    payload: bool = True
    design: str = "active"               # active (Fisher-information design) | random (one random feasible draw)
    # ds (D_s-optimal: information on the `interest` kinds, the other parameters marginalised) | logdet
    # (D-optimal over all) | min_eig (E-optimal)
    criterion: str = "ds"
    interest: str = "kp,armature,payload_mass"   # criterion=ds: the parameter kinds the design is for
    use_velocity: bool = False           # the fit will use velocities too (sysid fit use_velocity=true)
    n_harmonics: int = 5
    base_freq_hz: float = 0.2
    duration_s: float = 10.0
    command_hz: float = 20.0
    state_hz: float = 100.0              # joint-state rate (run_on=dds, dds_arm=sim: sim_robot_node's rate_hz)
    position_fraction: float = 0.25      # of each joint's range, either side of home
    velocity_fraction: float = 0.5       # of the datasheet limits
    acceleration_fraction: float = 0.5
    # No servo may ask for more than this share of its force range in the current simulator (trajectories are
    # shrunk until none does): saturated actuators make the fit's cost jump (README "sysid"). 0: no torque check.
    torque_fraction: float = 0.9
    population: int = 10
    generations: int = 4
    seed: int = 0
    threads: int = 1
    run_on: str = "sim"                  # sim | none | dds
    real_params: str = ""                # run_on=sim, or dds with dds_arm=sim: the simulated arm's hidden parameters
    dds_arm: str = "sim"                 # run_on=dds: sim (start sim_robot_node) | real (the arm's ros2_control runs)
    # run_on=dds: the forward position controller's topic, or a joint_trajectory_controller's
    # (/<controller>/joint_trajectory: commands as stamped one-point trajectories, exact timing; README "sysid")
    command_topic: str = "/forward_position_controller/commands"
    domain_id: int = -1                  # run_on=dds: -1 = ROS_DOMAIN_ID (0 when unset)
    local_only: bool = True              # run_on=dds: keep DDS on loopback (false: the robot's network)
    state_timeout_s: float = 20.0        # run_on=dds: wait this long for /joint_states
    ramp_velocity: float = 0.3           # run_on=dds: rad/s, peak speed of the ramp from the measured pose
    max_tracking_error: float = 0.3      # run_on=dds: rad; beyond it the motion stops
    lead_s: float = 0.1                  # run_on=dds on a joint_trajectory topic: stamped start after sending
    recording: str = ""                  # rosbag2 folder to write; empty: <out without suffix>_recording
    storage: str = "mcap"                # mcap | sqlite3
    replay: str = ""                     # a saved excitation.yaml to play as it is (no new design)
    view: str = ""                       # rerun: show the recording (joint positions, targets) in Rerun
    view_rrd: str = ""                   # view=rerun: .rrd file; empty: <out without suffix>_view.rrd


def write_design(path: Path, content: dict) -> None:
    import os
    import tempfile

    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(content, f, sort_keys=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_design(path: str | Path):
    """(trajectory, experiment, q_rest, robot name) of an excitation.yaml."""
    import yaml

    from calibration.excitation import Experiment, FourierTrajectory

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: excitation file not found")
    raw = yaml.safe_load(path.read_text()) or {}
    if raw.get("format") != FORMAT or raw.get("version") != VERSION:
        raise ValueError(f"{path}: expected format {FORMAT!r} version {VERSION}, got {raw.get('format')!r} "
                         f"version {raw.get('version')!r}")
    for key in ("robot", "trajectory", "experiment", "q_rest"):
        if key not in raw:
            raise ValueError(f"{path}: field {key!r} missing")
    traj = FourierTrajectory.from_dict(raw["trajectory"], str(path))
    e = raw["experiment"]
    experiment = Experiment(command_hz=float(e["command_hz"]), state_hz=float(e["state_hz"]),
                            duration_s=float(e["duration_s"]))
    return traj, experiment, np.asarray(raw["q_rest"], float), str(raw["robot"])


def _replay(path: Path, robot):
    """A saved design's content (its record rewritten when played again), trajectory, experiment and rest pose."""
    import yaml

    try:
        traj, experiment, q_rest, robot_name = load_design(path)
    except (ValueError, KeyError, TypeError) as err:
        raise CommandError(f"replay={path}: {err}") from None
    if robot_name != robot.name:
        raise CommandError(f"replay={path}: designed for robot {robot_name!r}, not {robot.name!r}")
    unknown = [j for j in traj.joint_names if j not in robot.arm_joints]
    if unknown or q_rest.shape != (robot.n_arm,):
        raise CommandError(f"replay={path}: joints {unknown} / rest pose of {q_rest.size} values do not fit "
                           f"{robot.name}'s arm joints {list(robot.arm_joints)}")
    content = yaml.safe_load(path.read_text())
    for key in ("recording", "dds"):
        content.pop(key, None)
    content["replayed_from"] = str(path)
    return content, traj, experiment, q_rest


def run(config: Config) -> int:
    import sys

    from sim.params import ParamsError
    from sim.robot import RobotConfigError

    try:
        return _run(config)
    except (CommandError, ParamsError, RobotConfigError) as err:
        print(f"robot-rl sysid excite: {err}", file=sys.stderr)
        return 2


def _run(config: Config) -> int:
    from sim.params import load_params
    from sim.robot import load_robot

    from calibration import excitation
    from calibration.arm_model import ArmModel

    if config.design not in ("active", "random"):
        raise CommandError(f"design={config.design!r}: expected 'active' or 'random'")
    if not 0 <= config.torque_fraction <= 1:
        raise CommandError(f"torque_fraction={config.torque_fraction}: expected a share of the force range in [0, 1]")
    if config.run_on not in ("sim", "none", "dds"):
        raise CommandError(f"run_on={config.run_on!r}: expected 'sim', 'none' or 'dds'")
    from hardware.rerun_view import check_view

    check_view(config.view)
    robot = load_robot(config.robot)
    out = Path(config.out)
    target = Path(config.recording) if config.recording else out.with_name(out.stem + "_recording")
    if config.run_on == "dds":
        from calibration import dds_excitation

        dds_run = dds_excitation.DdsRun(arm=config.dds_arm, sim_params=config.real_params,
                                        command_topic=config.command_topic, domain_id=config.domain_id,
                                        local_only=config.local_only, state_timeout_s=config.state_timeout_s,
                                        ramp_velocity=config.ramp_velocity,
                                        max_tracking_error=config.max_tracking_error, lead_s=config.lead_s,
                                        storage=config.storage)
        dds_excitation.check(dds_run, target)     # before the design: bad settings fail at once
    if config.replay:
        content, trajectory, experiment, q_rest = _replay(Path(config.replay), robot)
        print(f"replaying {config.replay} as designed ({content['design']}, {experiment.duration_s:g} s)")
    else:
        base = load_params(config.params) if config.params else None
        arm = ArmModel(robot, base_params=base)
        joints = tuple(j.strip() for j in config.joints.split(",") if j.strip()) or robot.arm_joints
        kinds = tuple(k.strip() for k in config.kinds.split(",") if k.strip())
        unknown = [j for j in joints if j not in robot.arm_joints]
        if unknown:
            raise CommandError(f"joints={config.joints!r}: {unknown} are not arm joints of {robot.name}: "
                              f"{list(robot.arm_joints)}")
        priors = arm.default_priors(joints, kinds, config.payload)
        q_rest = np.asarray(robot.home_qpos, float)
        experiment = excitation.Experiment(command_hz=config.command_hz, state_hz=config.state_hz,
                                           duration_s=config.duration_s, use_velocity=config.use_velocity)
        limits = _subset_limits(robot, joints, q_rest, config)
        interest = None
        if config.criterion == "ds":
            try:
                interest = excitation.interest_mask(priors, tuple(k.strip() for k in config.interest.split(",")
                                                                  if k.strip()))
            except ValueError as err:
                raise CommandError(f"interest={config.interest!r}: {err}") from None
        start = time.time()
        result = excitation.design(
            arm, priors, joints, q_rest, experiment, limits, config.n_harmonics, config.base_freq_hz,
            config.population, config.generations, config.criterion, config.seed, active=config.design == "active",
            n_threads=config.threads, interest=interest, torque_fraction=config.torque_fraction or None,
            progress=lambda g, f: print(f"generation {g}: best {config.criterion} {f:.4g} "
                                        f"({time.time() - start:.0f} s)"))
        content = {"format": FORMAT, "version": VERSION, "robot": robot.name, "design": config.design,
                   "criterion": {"kind": config.criterion, "value": result.criterion,
                                 "interest": [p.name for p, i in zip(priors, interest) if i] if interest is not None
                                 else [p.name for p in priors],
                                 "best_random": result.random_criterion, "history": result.history,
                                 "evaluations": result.evaluations},
                   "parameters": [p.name for p in priors], "q_rest": q_rest.tolist(),
                   "experiment": {"command_hz": experiment.command_hz, "state_hz": experiment.state_hz,
                                  "duration_s": experiment.duration_s},
                   "trajectory": result.trajectory.to_dict(), "design_seconds": round(time.time() - start, 2)}
        print(f"design: {config.criterion} {result.criterion:.4g} (best random start {result.random_criterion:.4g}), "
              f"{result.evaluations} candidates in {time.time() - start:.1f} s")
        trajectory = result.trajectory
    if config.run_on == "sim":
        from calibration.recording_io import write_recording
        from calibration.simulated_arm import run_commands

        commands = excitation.commands_for(trajectory, experiment, q_rest, robot.arm_joints)
        recording = run_commands(robot, commands, experiment.command_hz,
                                 params=config.real_params or None, state_hz=experiment.state_hz, seed=config.seed)
        write_recording(target, recording, storage=config.storage)
        content["recording"] = str(target)
        print(f"recorded {recording.duration_s:.1f} s on the simulated arm to {target}")
    if config.run_on == "dds":
        commands = excitation.commands_for(trajectory, experiment, q_rest, robot.arm_joints)
        played = dds_excitation.run_excitation(dds_run, robot, commands, experiment.command_hz,
                                               experiment.state_hz, target)
        content["recording"] = str(target)
        content["dds"] = {"arm": config.dds_arm, "command_topic": config.command_topic,
                          "commands_published": played.commands_published,
                          "joint_states_received": played.joint_states_received,
                          "start_error_rad": played.start_error, "publish_jitter_ms": played.publish_jitter_ms,
                          "sim_overruns": played.sim_overruns}
        print(f"played {played.commands_published} commands over DDS ({config.command_topic}), publish jitter "
              f"p50/p99 {played.publish_jitter_ms['p50']:.1f}/{played.publish_jitter_ms['p99']:.1f} ms; "
              f"recorded to {target}")
    if config.view and "recording" in content:
        _view_recording(config, robot, target, out)
    write_design(out, content)
    print(f"wrote {out}")
    return 0


def _view_recording(config: Config, robot, target: Path, out: Path) -> None:
    """view=rerun: the recorded excitation (measured joints and their targets) in Rerun; rerun imported here."""
    from calibration.recording_io import read_recording
    from hardware.rerun_view import log_joint_recording, open_view

    view = open_view(config.view, "sysid excite", config.view_rrd or out.with_name(out.stem + "_view.rrd"))
    log_joint_recording(view, read_recording(target, robot.arm_joints))
    print(f"view: {view.close() or 'streamed to the Rerun viewer'}")


def _subset_limits(robot, joints, q_rest, config: Config):
    from calibration.excitation import Limits, excitation_limits

    full = excitation_limits(robot, q_rest, config.position_fraction, config.velocity_fraction,
                             config.acceleration_fraction)
    index = [robot.arm_joints.index(j) for j in joints]
    return Limits(full.lower[index], full.upper[index], full.velocity[index], full.acceleration[index])
