"""`robot-rl sysid fit recording=... params=... out=robot_params.yaml`: fit the robot's physical parameters to
joint recordings with MuJoCo's system-identification toolbox (mujoco.sysid).

Per joint: damping, armature, friction loss and the position gain kp; globally the payload mass and the action
latency (whole control steps, chosen as the best of a short fit per candidate); link inertias stay at the
description's values (priors that make armature identifiable). 95 % confidence intervals come from the
Jacobian at the optimum (sysid.calculate_intervals) and become the domain-randomisation ranges of the
parameters file. The fit is checked on held-out data: separate recordings (`holdout=`) or the last
`holdout_fraction` of each recording. A report folder holds sysid's HTML report and a PNG of measured against
simulated joint trajectories (before and after the fit) on fit and held-out data.
"""
from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibration.arm_model import FIT_KINDS, ArmModel, Prior
from calibration.command_errors import CommandError
from calibration.recording_io import JointRecording, RecordingError, read_recording

KNOT_EPS_S = 1e-7     # a held command is a step; linear interpolation over this gap reproduces it


@dataclass
class Config:
    recording: str = ""                    # rosbag2 folder(s) to fit, comma-separated
    holdout: str = ""                      # held-out rosbag2 folder(s); empty: the tail of each recording
    holdout_fraction: float = 0.25
    params: str = ""                       # current robot parameters file (priors); empty: the description's
    robot: str = "panda"
    out: str = "robot_params.yaml"
    report: str = ""                       # report folder; empty: <out without suffix>_report
    joints: str = ""                       # arm joints to fit, comma-separated; empty: all
    kinds: str = ",".join(FIT_KINDS)
    payload: bool = True
    max_latency: int = 3                   # action latency candidates 0..max_latency (control steps)
    control_hz: float = 20.0               # the environment's control rate: unit of action_latency
    command_topic: str = ""                # empty: the one command topic in the recording
    use_velocity: bool = True              # fit joint velocities as well as positions
    observe: str = ""                      # joints whose data enter the fit; empty: the fitted joints
    max_iters: int = 30
    physics_dt: float = 0.002
    threads: int = 1
    html_report: bool = True
    view: str = ""                         # rerun: measured vs simulated joints (prior, fitted) in Rerun
    view_rrd: str = ""                     # view=rerun: .rrd file; empty: <report folder>/fit.rrd


@dataclass
class Segment:
    """One stretch of measured data as sysid needs it."""
    name: str
    recording: JointRecording
    start: int                  # state sample index range [start, stop)
    stop: int


@dataclass
class FitResult:
    values: dict[str, float]                   # fitted named parameters
    half_widths: dict[str, float]              # 95 % CI half-widths (inf: not identifiable from this data)
    priors: list[Prior]
    latency_steps: int                         # in the recording's command periods
    latency_costs: dict[int, float]            # cost of a short fit per latency candidate
    command_period_s: float
    obs_noise: float                           # rms position residual at the optimum (rad)
    fit_rmse: dict[str, float] = field(default_factory=dict)       # joint-position RMSE before/after, fit data
    holdout_rmse: dict[str, float] = field(default_factory=dict)   # the same on held-out data
    seconds: float = 0.0
    sysid: dict = field(default_factory=dict)  # objects for the report


def command_period(recording: JointRecording) -> float:
    return float(np.median(np.diff(recording.command_stamps))) * 1e-9


def split(recording: JointRecording, fraction: float) -> tuple[Segment, Segment | None]:
    n = len(recording.state_stamps)
    if fraction <= 0:
        return Segment("fit", recording, 0, n), None
    cut = int(round(n * (1.0 - fraction)))
    if cut < 20 or n - cut < 20:
        raise RecordingError(f"recording of {n} joint states is too short to hold out {fraction:.0%} of it "
                             f"(need 20 samples each side)")
    return Segment("fit", recording, 0, cut), Segment("holdout", recording, cut, n)


def _sequence_arrays(arm: ArmModel, seg: Segment, latency_s: float, use_velocity: bool,
                     observed: tuple[str, ...]):
    """(initial state, control TimeSeries, measured TimeSeries) of a segment, times in s from its start.
    Only `observed` joints enter the residual: sysid normalises each signal by its own size, which would
    blow up the noise of a joint that holds still."""
    from mujoco import sysid

    rec = seg.recording
    t0 = rec.state_stamps[seg.start]
    times = (rec.state_stamps[seg.start:seg.stop] - t0) * 1e-9
    nstep = int(np.ceil(times[-1] / arm.physics_dt - 1e-9))
    t_end = nstep * arm.physics_dt
    # Held commands as knots of a piecewise-linear signal (sysid interpolates controls linearly).
    cmd_t = (rec.command_stamps - t0) * 1e-9 + latency_s
    before = cmd_t <= 0.0
    start_value = rec.command[np.flatnonzero(before)[-1]] if before.any() else rec.position[seg.start]
    knots_t, knots_v = [0.0], [start_value]
    for t, value in zip(cmd_t[(cmd_t > 0.0) & (cmd_t < t_end)], rec.command[(cmd_t > 0.0) & (cmd_t < t_end)]):
        if t - KNOT_EPS_S > knots_t[-1]:
            knots_t.append(t - KNOT_EPS_S)
            knots_v.append(knots_v[-1])
        knots_t.append(t)
        knots_v.append(value)
    knots_t.append(t_end)
    knots_v.append(knots_v[-1])
    gripper = 0.0
    if rec.extra_positions:
        gripper = sum(float(rec.extra_positions[j][seg.start]) for j in arm.robot.gripper_joints
                      if j in rec.extra_positions)
    control = sysid.TimeSeries(np.asarray(knots_t), arm.controls(np.asarray(knots_v), gripper))
    model = arm.base_model
    cols = [arm.robot.arm_joints.index(j) for j in observed]
    names = [f"{j}_qpos" for j in observed]
    data = rec.position[seg.start:seg.stop, cols]
    if use_velocity and rec.velocity is not None:
        names += [f"{j}_qvel" for j in observed]
        data = np.concatenate([data, rec.velocity[seg.start:seg.stop, cols]], axis=1)
    measured = sysid.TimeSeries.from_names(times, data, model, names)
    qvel0 = rec.velocity[seg.start] if rec.velocity is not None else None
    state0 = arm.initial_state(model, rec.position[seg.start], qvel0, gripper)
    return state0, control, measured


def _model_sequences(arm: ArmModel, segments: list[Segment], latency_s: float, use_velocity: bool,
                     observed: tuple[str, ...]):
    from mujoco import sysid

    spec = arm.spec()
    arrays = [_sequence_arrays(arm, seg, latency_s, use_velocity, observed) for seg in segments]
    return sysid.ModelSequences("arm", spec, [f"{s.name}{i}" for i, s in enumerate(segments)],
                                [a[0] for a in arrays], [a[1] for a in arrays], [a[2] for a in arrays],
                                allow_missing_sensors=True)


def _parameter_dict(priors: list[Prior]):
    from mujoco import sysid

    params = sysid.ParameterDict()
    for p in priors:
        params.add(sysid.Parameter(p.name, nominal=p.nominal, min_value=p.low, max_value=p.high))
    return params


def _build_model_fn(arm: ArmModel):
    def build_model(params, spec):     # every candidate through sim's own parameter setters
        return arm.model({name: float(params[name].value[0]) for name in params.keys()})

    return build_model


def _residual_fn(arm: ArmModel, sequences, threads: int):
    from mujoco import sysid

    return sysid.build_residual_fn(models_sequences=[sequences], build_model=_build_model_fn(arm),
                                   n_threads=threads)


def _optimize(params, residual_fn, priors: list[Prior], max_iters: int, log: io.StringIO):
    """scipy's trust-region-reflective least squares (robust at box bounds, scaled by the priors) with
    MuJoCo's batched finite-difference Jacobian: sysid's "scipy_parallel_fd" backend."""
    from contextlib import redirect_stdout

    from mujoco import sysid

    with redirect_stdout(log):
        return sysid.optimize(params, residual_fn, optimizer="scipy_parallel_fd", verbose=False,
                              max_iters=max_iters, x_scale=np.array([p.scale for p in priors]), diff_step=1e-4,
                              xtol=1e-12, ftol=1e-12, gtol=1e-12)


def _position_rmse(residual_fn, params, x, n_joints: int) -> float:
    """Joint-position RMSE (rad) of the simulation against the measurements at parameter vector x."""
    _, preds, records = residual_fn(x, params, return_pred_all=True)
    errors = [rec.data[:, :n_joints] - pred.data[:, :n_joints] for pred, rec in zip(preds[0], records[0])]
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))


def fit(arm: ArmModel, priors: list[Prior], fit_segments: list[Segment], holdout_segments: list[Segment],
        max_latency: int = 3, max_iters: int = 30, use_velocity: bool = True, threads: int = 1,
        latency_iters: int = 4, observed: tuple[str, ...] | None = None, progress=print) -> FitResult:
    """`observed`: joints whose positions (and velocities) enter the residual; default all arm joints."""
    from mujoco import sysid

    start = time.time()
    logging.getLogger("absl").setLevel(logging.ERROR)       # sysid warns about the sensors we do not model
    period = command_period(fit_segments[0].recording)
    observed = tuple(observed or arm.robot.arm_joints)
    n_joints = len(observed)
    log = io.StringIO()
    # Latency: a short fit per whole number of command periods, then the full fit at the best one.
    costs, starts = {}, {}
    for latency in range(max_latency + 1):
        sequences = _model_sequences(arm, fit_segments, latency * period, use_velocity, observed)
        params = _parameter_dict(priors).move_off_bounds()
        residual_fn = _residual_fn(arm, sequences, threads)
        if max_latency == 0:
            costs[latency], starts[latency] = 0.0, params
            break
        opt, _ = _optimize(params, residual_fn, priors, latency_iters, log)
        residuals, _, _ = residual_fn(opt.as_vector(), opt)
        costs[latency] = float(np.sum(np.concatenate(residuals) ** 2))
        starts[latency] = opt
        progress(f"latency {latency} command periods: cost {costs[latency]:.6g}")
    latency = min(costs, key=costs.get)
    sequences = _model_sequences(arm, fit_segments, latency * period, use_velocity, observed)
    residual_fn = _residual_fn(arm, sequences, threads)
    initial = _parameter_dict(priors)
    opt, result = _optimize(starts[latency].copy(), residual_fn, priors, max_iters, log)
    residuals, _, _ = residual_fn(opt.as_vector(), opt)
    # Intervals in units of each prior's scale (sysid treats eigenvalues below 1e-15 of the largest as zero,
    # which raw units spanning kp ~ 1e3 and armature ~ 1e-1 would trip), then back to SI units.
    scales = np.array([p.scale for p in priors])
    _, intervals = sysid.calculate_intervals(residuals, result.jac * scales)
    intervals = intervals * scales
    names = [p.name for p in priors]
    values = {n: float(opt[n].value[0]) for n in names}
    half = {n: float(h) for n, h in zip(names, intervals)}
    # Observation noise: what is left of the position residual at the optimum, in radians.
    obs_noise = _position_rmse(residual_fn, opt, opt.as_vector(), n_joints)
    fit_rmse = {"prior": _position_rmse(residual_fn, initial, initial.as_vector(), n_joints), "fitted": obs_noise}
    holdout_rmse, holdout_fn = {}, None
    if holdout_segments:
        holdout_seq = _model_sequences(arm, holdout_segments, latency * period, use_velocity, observed)
        holdout_fn = _residual_fn(arm, holdout_seq, threads)
        holdout_rmse = {"prior": _position_rmse(holdout_fn, initial, initial.as_vector(), n_joints),
                        "fitted": _position_rmse(holdout_fn, opt, opt.as_vector(), n_joints)}
    return FitResult(values, half, priors, latency, costs, period, obs_noise, fit_rmse, holdout_rmse,
                     time.time() - start,
                     sysid={"observed": observed, "sequences": sequences, "initial": initial, "opt": opt, "result": result,
                            "residual_fn": residual_fn, "holdout_fn": holdout_fn, "log": log.getvalue()})


def to_robot_params(result: FitResult, robot: str, base=None, control_hz: float = 20.0):
    """The robot parameters file's content: the base file's entries, overridden by the fitted ones with
    their 95 % intervals (clipped to each prior's box, which also stands in for an unbounded interval)."""
    from sim.params import Parameter, RobotParams

    entries = dict(base.parameters) if base is not None else {}
    for prior in result.priors:
        value = result.values[prior.name]
        h = result.half_widths[prior.name]
        lo, hi = (prior.low, prior.high) if not np.isfinite(h) else (max(prior.low, value - h), min(prior.high, value + h))
        entries[prior.name] = Parameter(value, (min(lo, value), max(hi, value)))
    latency = int(round(result.latency_steps * result.command_period_s * control_hz))
    entries["action_latency"] = Parameter(float(latency))
    entries["obs_noise"] = Parameter(float(result.obs_noise))
    return RobotParams(robot, entries, "calibration.fit")


def view_fit(view, result: FitResult) -> None:
    """Per joint, measured vs simulated positions (prior and fitted) and the fitted residual, on fit and
    held-out data, into a hardware.rerun_view.RerunView (sysid/<data>/...)."""
    s = result.sysid
    names = [j.replace("panda_", "") for j in s["observed"]]
    panels = [("fit", s["residual_fn"])] + ([("held-out", s["holdout_fn"])] if s["holdout_fn"] else [])
    for title, fn in panels:
        _, prior_pred, records = fn(s["initial"].as_vector(), s["initial"], return_pred_all=True)
        _, fitted_pred, _ = fn(s["opt"].as_vector(), s["opt"], return_pred_all=True)
        rec, p0, p1 = records[0][0], prior_pred[0][0], fitted_pred[0][0]
        n = len(names)
        for what, series in (("measured", rec), ("prior", p0), ("fitted", p1)):
            view.log_series(f"sysid/{title}/{what}/position", series.times, series.data[:, :n], names)
        view.log_series(f"sysid/{title}/residual", rec.times, rec.data[:, :n] - p1.data[:, :n], names)
    lo_hi = {p.name: (result.values[p.name], result.half_widths[p.name]) for p in result.priors}
    view.rec.log("sysid/parameters", view.rr.TextDocument("\n".join(
        f"{name}: {value:.5g} +- {half:.3g} (95 %)" for name, (value, half) in lo_hi.items())))


def write_report(result: FitResult, arm: ArmModel, folder: Path, html: bool = True) -> list[Path]:
    """PNG of measured vs simulated joint positions (prior and fitted; fit and held-out data), a text summary,
    and sysid's HTML report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    s = result.sysid
    observed = s["observed"]
    n = len(observed)
    panels = [("fit", s["residual_fn"])] + ([("held-out", s["holdout_fn"])] if s["holdout_fn"] else [])
    fig, axes = plt.subplots(n, len(panels), figsize=(6 * len(panels), 1.6 * n), squeeze=False, sharex="col")
    for col, (title, fn) in enumerate(panels):
        _, prior_pred, records = fn(s["initial"].as_vector(), s["initial"], return_pred_all=True)
        _, fitted_pred, _ = fn(s["opt"].as_vector(), s["opt"], return_pred_all=True)
        rec, p0, p1 = records[0][0], prior_pred[0][0], fitted_pred[0][0]
        for j in range(n):
            ax = axes[j, col]
            ax.plot(rec.times, rec.data[:, j], "k", lw=1.2, label="measured")
            ax.plot(p0.times, p0.data[:, j], "r--", lw=0.9, label="prior sim")
            ax.plot(p1.times, p1.data[:, j], "b", lw=0.9, label="fitted sim")
            ax.set_ylabel(observed[j].replace("panda_", ""), fontsize=7)
            ax.tick_params(labelsize=6)
        axes[0, col].set_title(f"{title} data: joint positions (rad)", fontsize=9)
        axes[-1, col].set_xlabel("time (s)", fontsize=8)
    axes[0, 0].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    png = folder / "trajectories.png"
    tmp = folder / ".trajectories.png.tmp"
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(png)
    written.append(png)
    summary = folder / "summary.txt"
    lines = [f"fit time {result.seconds:.1f} s; latency {result.latency_steps} command periods "
             f"({result.latency_steps * result.command_period_s * 1e3:.0f} ms); costs {result.latency_costs}",
             f"joint-position RMSE on fit data: {result.fit_rmse}", f"on held-out data: {result.holdout_rmse}", "",
             f"{'parameter':<28}{'prior':>12}{'fitted':>12}{'95% +-':>12}"]
    lines += [f"{p.name:<28}{p.nominal:>12.4g}{result.values[p.name]:>12.4g}{result.half_widths[p.name]:>12.3g}"
              for p in result.priors]
    lines += ["", "optimizer log:", s["log"]]
    _atomic_text(summary, "\n".join(lines) + "\n")
    written.append(summary)
    if html:
        from mujoco import sysid

        sysid.default_report([s["sequences"]], s["initial"], s["opt"], s["residual_fn"], s["result"],
                             title=f"{arm.robot.name} system identification", save_path=folder,
                             build_model=_build_model_fn(arm), generate_videos=False)
        written.append(folder / "report.html")
    return written


def _atomic_text(path: Path, text: str) -> None:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _paths(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def run(config: Config) -> int:
    import sys

    from sim.params import ParamsError
    from sim.robot import RobotConfigError

    try:
        return _run(config)
    except (CommandError, RecordingError, ParamsError, RobotConfigError) as err:
        print(f"robot-rl sysid fit: {err}", file=sys.stderr)
        return 2


def _run(config: Config) -> int:
    from sim.params import load_params, save_params
    from sim.robot import load_robot

    if not _paths(config.recording):
        raise CommandError("recording=PATH is required (a rosbag2 folder; several comma-separated)")
    robot = load_robot(config.robot)
    topic = config.command_topic or None
    base = load_params(config.params) if config.params else None
    recordings = [read_recording(p, robot.arm_joints, topic) for p in _paths(config.recording)]
    holdouts = [read_recording(p, robot.arm_joints, topic) for p in _paths(config.holdout)]
    arm = ArmModel(robot, config.physics_dt, base)
    joints = tuple(_paths(config.joints)) or robot.arm_joints
    unknown = [j for j in joints if j not in robot.arm_joints]
    if unknown:
        raise CommandError(f"joints={config.joints!r}: {unknown} are not arm joints of {robot.name}")
    kinds = tuple(_paths(config.kinds))
    bad = [k for k in kinds if k not in ("damping", "armature", "frictionloss", "kp", "kv")]
    if bad:
        raise CommandError(f"kinds={config.kinds!r}: unknown kind(s) {bad}")
    priors = arm.default_priors(joints, kinds, config.payload)
    fit_segments, holdout_segments = [], []
    for i, rec in enumerate(recordings):
        fit_seg, hold_seg = split(rec, 0.0 if holdouts else config.holdout_fraction)
        fit_segments.append(fit_seg)
        holdout_segments += [hold_seg] if hold_seg else []
    holdout_segments += [Segment("holdout", h, 0, len(h.state_stamps)) for h in holdouts]
    observed = tuple(_paths(config.observe)) or joints
    result = fit(arm, priors, fit_segments, holdout_segments, config.max_latency, config.max_iters,
                 config.use_velocity, config.threads, observed=observed)
    params = to_robot_params(result, robot.name, base, config.control_hz)
    out = Path(config.out)
    save_params(params, out)
    report = Path(config.report) if config.report else out.with_name(out.stem + "_report")
    write_report(result, arm, report, config.html_report)
    if config.view:
        from hardware.rerun_view import open_view

        view = open_view(config.view, "sysid fit", config.view_rrd or report / "fit.rrd")
        view_fit(view, result)
        print(f"view: {view.close() or 'streamed to the Rerun viewer'}")
    print(f"wrote {out} and {report}/ in {result.seconds:.1f} s fit time")
    print(f"joint-position RMSE, fit data: prior {result.fit_rmse['prior']:.4g} -> fitted "
          f"{result.fit_rmse['fitted']:.4g} rad")
    if result.holdout_rmse:
        print(f"joint-position RMSE, held-out data: prior {result.holdout_rmse['prior']:.4g} -> fitted "
              f"{result.holdout_rmse['fitted']:.4g} rad")
    return 0
