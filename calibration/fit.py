"""`robot-rl sysid fit recording=... params=... out=robot_params.yaml`: fit the robot's physical parameters to
joint recordings with MuJoCo's system-identification toolbox (mujoco.sysid).

Per joint: damping, armature, friction loss and the position gain kp; globally the payload mass and the action
latency; link inertias stay at the description's values (priors that make armature identifiable).

Time: joint states carry the instant they were measured (header stamp), commands their bag (receive) stamp.
A command acts at the first controller tick at or after its stamp + the delay (ros2_control applies the latest
command in its update; the ticks are the joint-state grid unless tick_s= says otherwise). The delay is the
latency in whole command periods (the best of a short fit per candidate) plus a sub-step offset (transport and
scheduling, scored in half ticks at that short fit's parameters).

95 % intervals come from a Newey-West sandwich covariance at the optimum (residuals of a fit are correlated
over many samples; the white-noise interval is far too narrow) and become the domain-randomisation ranges of
the parameters file; a parameter whose interval spans more than a tenth of its prior's box is reported as not
determined by the data. The fit is checked on held-out data (`holdout=` recordings or the last
`holdout_fraction` of each): a fit that does not predict them better than the prior is reported as FAILED
(exit status 3) and writes no parameters file unless force=true. The report folder holds an offline
report.html (images inline), trajectories.png (positions, velocities and residuals per joint, prior and fitted,
fit and held-out data), intervals.png and summary.txt (values, intervals, what is not determined, warnings
such as parameters at their bounds).
"""
from __future__ import annotations

import io
import logging
import math
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
    # Joint velocities in the residual as well as positions. Off by default: a velocity right after a command
    # step changes fast, so a few ms of timing error between the command's bag stamp and the instant it took
    # effect weigh far more in velocities than in positions (measured on DDS recordings, README "sysid").
    use_velocity: bool = False
    observe: str = ""                      # joints whose data enter the fit; empty: the fitted joints
    tick_s: float = 0.0                    # the robot's controller period (commands apply on it); 0: state period
    offset_ticks: int = 4                  # sub-step time offsets searched: +-offset_ticks ticks, half-tick steps
    max_iters: int = 30
    physics_dt: float = 0.002
    threads: int = 1
    force: bool = False                    # write the parameters even when the fit fails its held-out check
    html_report: bool = True
    view: str = ""                         # rerun: measured vs simulated joints (prior, fitted) in Rerun
    view_rrd: str = ""                     # view=rerun: .rrd file; empty: <report folder>/fit.rrd


class FitFailed(CommandError):
    """The fitted parameters do not predict held-out data better than the prior's: nothing is written."""


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
    offset_s: float = 0.0                      # sub-step time offset found beyond the whole latency steps
    offset_costs: dict[float, float] = field(default_factory=dict)
    identifiable: dict[str, bool] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    interval_inflation: float = 1.0            # HAC / white-noise interval width (residual autocorrelation)
    sysid: dict = field(default_factory=dict)  # objects for the report

    @property
    def delay_s(self) -> float:
        return self.latency_steps * self.command_period_s + self.offset_s

    @property
    def improved(self) -> bool:
        """Does the fit predict the held-out data (the fit data when there is none) better than the prior?"""
        rmse = self.holdout_rmse or self.fit_rmse
        return rmse["fitted"] < rmse["prior"]


def command_period(recording: JointRecording) -> float:
    return float(np.median(np.diff(recording.command_stamps))) * 1e-9


def state_period(recording: JointRecording) -> float:
    return float(np.median(np.diff(recording.state_stamps))) * 1e-9


def split(recording: JointRecording, fraction: float) -> tuple[Segment, Segment | None]:
    n = len(recording.state_stamps)
    if fraction <= 0:
        return Segment("fit", recording, 0, n), None
    cut = int(round(n * (1.0 - fraction)))
    if cut < 20 or n - cut < 20:
        raise RecordingError(f"recording of {n} joint states is too short to hold out {fraction:.0%} of it "
                             f"(need 20 samples each side)")
    return Segment("fit", recording, 0, cut), Segment("holdout", recording, cut, n)


@dataclass(frozen=True)
class Timing:
    """When a recorded command acts on the arm: its bag stamp + `delay_s`, then the first controller tick at or
    after that (ros2_control applies the latest command in its update; joint states are read on the same
    ticks, so the ticks are the joint-state stamps' grid unless `tick_s` says otherwise)."""
    delay_s: float
    tick_s: float = 0.0          # 0: the joint-state period of the segment's recording

    def applied(self, seg: Segment, command_t: np.ndarray) -> np.ndarray:
        tick = self.tick_s or state_period(seg.recording)
        t = command_t + self.delay_s
        return np.ceil(t / tick - 1e-6) * tick


def _sequence_arrays(arm: ArmModel, seg: Segment, timing: Timing, use_velocity: bool,
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
    cmd_t = timing.applied(seg, (rec.command_stamps - t0) * 1e-9)
    before = cmd_t <= 0.0
    start_value = rec.command[np.flatnonzero(before)[-1]] if before.any() else rec.position[seg.start]
    knots_t, knots_v = [0.0], [start_value]
    inside = (cmd_t > 0.0) & (cmd_t < t_end)
    for t, value in zip(cmd_t[inside], rec.command[inside]):
        if t - KNOT_EPS_S > knots_t[-1]:
            knots_t.append(t - KNOT_EPS_S)
            knots_v.append(knots_v[-1])
        if t <= knots_t[-1]:            # two commands on one tick: the later one is what the controller holds
            knots_v[-1] = value
            continue
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


def _model_sequences(arm: ArmModel, segments: list[Segment], timing: Timing, use_velocity: bool,
                     observed: tuple[str, ...]):
    from mujoco import sysid

    spec = arm.spec()
    arrays = [_sequence_arrays(arm, seg, timing, use_velocity, observed) for seg in segments]
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


# Relative finite-difference step of the optimiser's Jacobian. The fit's cost is not smooth in the parameters
# at small scales (measured on a generated arm along the kp-damping valley: bumps of ~15 chi^2, also with
# friction, contacts and every constraint disabled): with 1e-4 the Jacobian followed the bumps, trust-region
# steps were rejected and the fit stopped 1.1 % above the truth's cost after 30 evaluations; 1e-2 moves on.
DIFF_STEP = 1e-2


def _optimize(params, residual_fn, priors: list[Prior], max_iters: int, log: io.StringIO):
    """scipy's trust-region-reflective least squares (robust at box bounds, scaled by the priors) with
    MuJoCo's batched finite-difference Jacobian: sysid's "scipy_parallel_fd" backend."""
    from contextlib import redirect_stdout

    from mujoco import sysid

    with redirect_stdout(log):
        return sysid.optimize(params, residual_fn, optimizer="scipy_parallel_fd", verbose=False,
                              max_iters=max_iters, x_scale=np.array([p.scale for p in priors]), diff_step=DIFF_STEP,
                              xtol=1e-12, ftol=1e-12, gtol=1e-12)


def _cost(residual_fn, params) -> float:
    residuals, _, _ = residual_fn(params.as_vector(), params)
    return float(np.sum(np.concatenate(residuals) ** 2))


def _position_rmse(residual_fn, params, x, n_joints: int) -> float:
    """Joint-position RMSE (rad) of the simulation against the measurements at parameter vector x."""
    _, preds, records = residual_fn(x, params, return_pred_all=True)
    errors = [rec.data[:, :n_joints] - pred.data[:, :n_joints] for pred, rec in zip(preds[0], records[0])]
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))


def hac_intervals(residuals: np.ndarray, jac: np.ndarray, n_signals: int, alpha: float = 0.05,
                  max_lag: int | None = None) -> tuple[np.ndarray, float, int]:
    """95 % half-widths of least-squares parameters from a Newey-West (HAC) sandwich covariance.

    The textbook interval s^2 (J^T J)^-1 assumes independent residuals; what a fit leaves (model error, timing
    error, filtered sensors) is correlated over many samples, which makes those intervals far too narrow.
    The sandwich (J^T J)^-1 Omega (J^T J)^-1 with Omega the Bartlett-weighted autocovariance of the per-sample
    scores J_t^T r_t (Newey and West, Econometrica 55(3), 1987) holds for correlated residuals and any
    weighting. Rows of `residuals`/`jac` are (sample, signal) in sample-major order. The lag window reaches
    where the residuals' mean autocorrelation has died out (at least 1, at most a fifth of the samples).
    Returns (half-widths, width inflation over the white-noise interval, lag window); inf where J^T J has a
    null direction the parameter takes part in (not identifiable from these data)."""
    from scipy import stats

    r = residuals.reshape(-1, n_signals)
    g = (jac.reshape(r.shape[0], n_signals, -1) * r[:, :, None]).sum(axis=1)      # (T, P) per-sample scores
    n, p = g.shape
    if max_lag is None:
        centred = r - r.mean(axis=0)
        var = np.maximum((centred ** 2).sum(axis=0), 1e-300)
        max_lag = 1
        limit = max(1, n // 5)
        while max_lag < limit:
            rho = np.mean((centred[max_lag:] * centred[:-max_lag]).sum(axis=0) / var)
            if rho < 0.05:
                break
            max_lag += 1
    omega = g.T @ g
    for lag in range(1, max_lag + 1):
        gamma = g[lag:].T @ g[:-lag]
        omega += (1.0 - lag / (max_lag + 1)) * (gamma + gamma.T)
    h = jac.T @ jac
    lamb, v = np.linalg.eigh(h)
    keep = lamb > 1e-12 * max(lamb.max(), 1e-300)
    h_pinv = (v[:, keep] / lamb[keep]) @ v[:, keep].T
    cov = h_pinv @ omega @ h_pinv
    z = stats.norm.ppf(1 - alpha / 2)
    half = z * np.sqrt(np.maximum(np.diag(cov), 0.0))
    null = np.any(np.abs(v[:, ~keep]) > 1e-6, axis=1) if (~keep).any() else np.zeros(p, bool)
    half[null] = np.inf
    s2 = float(residuals @ residuals) / max(residuals.size - p, 1)
    white = z * np.sqrt(np.maximum(s2 * np.diag(h_pinv), 1e-300))
    finite = np.isfinite(half)
    inflation = float(np.median(half[finite] / white[finite])) if finite.any() else 1.0
    return half, inflation, max_lag


IDENTIFIABLE_FRACTION = 0.1    # a 95 % interval narrower than this share of the prior's box: determined


def fit(arm: ArmModel, priors: list[Prior], fit_segments: list[Segment], holdout_segments: list[Segment],
        max_latency: int = 3, max_iters: int = 30, use_velocity: bool = False, threads: int = 1,
        latency_iters: int = 4, observed: tuple[str, ...] | None = None, tick_s: float = 0.0,
        offset_ticks: int = 4, progress=print) -> FitResult:
    """`observed`: joints whose positions (and velocities) enter the residual; default all arm joints.

    Time alignment: a short fit per whole number of command periods of latency picks the latency; then
    sub-step offsets (+-offset_ticks controller ticks in half ticks: transport and scheduling delays of a
    recording whose command stamps are receive times) are scored at that short fit's parameters; the full fit
    runs at the best total delay."""
    from mujoco import sysid

    start = time.time()
    logging.getLogger("absl").setLevel(logging.ERROR)       # sysid warns about the sensors we do not model
    period = command_period(fit_segments[0].recording)
    tick = tick_s or state_period(fit_segments[0].recording)
    observed = tuple(observed or arm.robot.arm_joints)
    n_joints = len(observed)
    n_signals = n_joints * (2 if use_velocity and fit_segments[0].recording.velocity is not None else 1)
    log = io.StringIO()

    def sequences_at(delay: float, segments=fit_segments):
        return _model_sequences(arm, segments, Timing(delay, tick_s), use_velocity, observed)

    costs, starts = {}, {}
    for latency in range(max_latency + 1):
        params = _parameter_dict(priors).move_off_bounds()
        if max_latency == 0 and offset_ticks == 0:     # nothing to choose: the full fit starts at the prior
            costs[latency], starts[latency] = 0.0, params
            break
        # A short fit per candidate: the offsets are then scored near the data's parameters, not the prior's.
        residual_fn = _residual_fn(arm, sequences_at(latency * period), threads)
        opt, _ = _optimize(params, residual_fn, priors, latency_iters, log)
        costs[latency], starts[latency] = _cost(residual_fn, opt), opt
        progress(f"latency {latency} command periods: cost {costs[latency]:.6g}")
    latency = min(costs, key=costs.get)
    offset_costs = {}
    for k in range(-2 * offset_ticks, 2 * offset_ticks + 1):
        offset = 0.5 * k * tick
        if latency * period + offset < 0:
            continue
        offset_costs[round(offset, 9)] = _cost(_residual_fn(arm, sequences_at(latency * period + offset), threads),
                                               starts[latency])
    offset = 0.0
    if offset_costs:     # ties (offsets that land commands on the same ticks) go to the smallest offset
        best = min(offset_costs.values())
        offset = min((o for o, c in offset_costs.items() if c <= best * (1 + 1e-9)), key=abs)
    if offset_costs:
        progress(f"time offset {offset * 1e3:+.1f} ms beyond {latency} command periods: cost "
                 f"{offset_costs[offset]:.6g} (at 0: {offset_costs.get(0.0, float('nan')):.6g})")
    delay = latency * period + offset
    sequences = sequences_at(delay)
    residual_fn = _residual_fn(arm, sequences, threads)
    initial = _parameter_dict(priors)
    opt, result = _optimize(starts[latency].copy(), residual_fn, priors, max_iters, log)
    residuals, _, _ = residual_fn(opt.as_vector(), opt)
    residuals = np.concatenate(residuals)
    # Intervals in units of each prior's scale (raw units spanning kp ~ 1e3 and armature ~ 1e-1 would make
    # J^T J's eigenvalues useless), then back to SI units.
    scales = np.array([p.scale for p in priors])
    half_scaled, inflation, lag = hac_intervals(residuals, result.jac * scales, n_signals)
    intervals = half_scaled * scales
    names = [p.name for p in priors]
    values = {n: float(opt[n].value[0]) for n in names}
    half = {n: float(h) for n, h in zip(names, intervals)}
    identifiable = {p.name: bool(np.isfinite(half[p.name])
                                 and 2 * half[p.name] < IDENTIFIABLE_FRACTION * (p.high - p.low)) for p in priors}
    warnings = []
    for p in priors:
        v = values[p.name]
        if v <= p.low + 1e-3 * (p.high - p.low) or v >= p.high - 1e-3 * (p.high - p.low):
            warnings.append(f"{p.name} = {v:.4g} is at its bound [{p.low:.4g}, {p.high:.4g}]: the data pull it "
                            f"outside the prior's box, or it is not determined")
    if getattr(result, "status", None) == 0:       # scipy: the evaluation budget ran out before any tolerance
        warnings.append(f"the optimiser stopped at max_iters={max_iters} function evaluations before converging: "
                        f"values and intervals may not be at the optimum (raise max_iters)")
    if latency == max_latency and max_latency > 0:
        warnings.append(f"latency at its largest candidate ({max_latency} command periods): raise max_latency")
    if offset_costs and abs(offset) >= offset_ticks * tick - 1e-12:
        warnings.append(f"time offset {offset * 1e3:+.1f} ms at the edge of the search: raise offset_ticks")
    # Observation noise: what is left of the position residual at the optimum, in radians.
    obs_noise = _position_rmse(residual_fn, opt, opt.as_vector(), n_joints)
    fit_rmse = {"prior": _position_rmse(residual_fn, initial, initial.as_vector(), n_joints), "fitted": obs_noise}
    holdout_rmse, holdout_fn = {}, None
    if holdout_segments:
        holdout_fn = _residual_fn(arm, sequences_at(delay, holdout_segments), threads)
        holdout_rmse = {"prior": _position_rmse(holdout_fn, initial, initial.as_vector(), n_joints),
                        "fitted": _position_rmse(holdout_fn, opt, opt.as_vector(), n_joints)}
    return FitResult(values, half, priors, latency, costs, period, obs_noise, fit_rmse, holdout_rmse,
                     time.time() - start, offset, offset_costs, identifiable, warnings, inflation,
                     sysid={"observed": observed, "sequences": sequences, "initial": initial, "opt": opt,
                            "result": result, "residual_fn": residual_fn, "holdout_fn": holdout_fn,
                            "log": log.getvalue(), "hac_lag": lag, "tick_s": tick,
                            "velocity": n_signals > n_joints})


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
    # Randomisation ranges for the two environment parameters: the delay found (whole steps + sub-step offset)
    # lies between two whole control steps; the noise between the residuals on the fit and held-out data.
    delay = result.delay_s * control_hz
    entries["action_latency"] = Parameter(float(latency), (float(min(max(0, math.floor(delay + 1e-9)), latency)),
                                                           float(max(math.ceil(delay - 1e-9), latency))))
    residuals = [v for v in (result.fit_rmse.get("fitted"), result.holdout_rmse.get("fitted"), result.obs_noise)
                 if v is not None and np.isfinite(v)]
    entries["obs_noise"] = Parameter(float(result.obs_noise), (float(min(residuals)), float(max(residuals))))
    return RobotParams(robot, entries, "calibration.fit")


def _trajectory_figure(result: FitResult, path: Path) -> None:
    """Per joint: measured vs simulated positions (prior and fitted), velocities, and the fitted residual,
    on fit and held-out data."""
    import matplotlib.pyplot as plt

    s = result.sysid
    observed = s["observed"]
    n = len(observed)
    panels = [("fit", s["residual_fn"])] + ([("held-out", s["holdout_fn"])] if s["holdout_fn"] else [])
    fig, axes = plt.subplots(n, 3 * len(panels), figsize=(5 * 3 * len(panels), 1.6 * n), squeeze=False,
                             sharex="col")
    for col, (title, fn) in enumerate(panels):
        _, prior_pred, records = fn(s["initial"].as_vector(), s["initial"], return_pred_all=True)
        _, fitted_pred, _ = fn(s["opt"].as_vector(), s["opt"], return_pred_all=True)
        rec, p0, p1 = records[0][0], prior_pred[0][0], fitted_pred[0][0]
        for j in range(n):
            ax_q, ax_v, ax_r = axes[j, 3 * col], axes[j, 3 * col + 1], axes[j, 3 * col + 2]
            ax_q.plot(rec.times, rec.data[:, j], "k", lw=1.2, label="measured")
            ax_q.plot(p0.times, p0.data[:, j], "r--", lw=0.9, label="prior sim")
            ax_q.plot(p1.times, p1.data[:, j], "b", lw=0.9, label="fitted sim")
            if s["velocity"]:
                measured_v, prior_v, fitted_v = rec.data[:, n + j], p0.data[:, n + j], p1.data[:, n + j]
            else:   # velocities are not in the residual: differences of the positions, the same for all three
                measured_v, prior_v, fitted_v = (np.gradient(x.data[:, j], x.times) for x in (rec, p0, p1))
            ax_v.plot(rec.times, measured_v, "k", lw=0.8)
            ax_v.plot(p0.times, prior_v, "r--", lw=0.7)
            ax_v.plot(p1.times, fitted_v, "b", lw=0.7)
            ax_r.plot(rec.times, (rec.data[:, j] - p1.data[:, j]) * 1e3, "b", lw=0.6)
            ax_r.plot(rec.times, (rec.data[:, j] - p0.data[:, j]) * 1e3, "r", lw=0.4, alpha=0.5)
            ax_q.set_ylabel(observed[j].replace("panda_", ""), fontsize=7)
            for ax in (ax_q, ax_v, ax_r):
                ax.tick_params(labelsize=6)
        axes[0, 3 * col].set_title(f"{title}: positions (rad)", fontsize=9)
        axes[0, 3 * col + 1].set_title(f"{title}: velocities (rad/s)", fontsize=9)
        axes[0, 3 * col + 2].set_title(f"{title}: residual measured - sim (mrad)", fontsize=9)
        for k in range(3):
            axes[-1, 3 * col + k].set_xlabel("time (s)", fontsize=8)
    axes[0, 0].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    _save_figure(fig, path)


def _interval_figure(result: FitResult, path: Path) -> None:
    """Fitted value and 95 % interval of each parameter relative to its prior value, grey where the data do
    not determine it."""
    import matplotlib.pyplot as plt

    priors = result.priors
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(priors) + 1.0))
    for i, p in enumerate(priors):
        ref = p.nominal if p.nominal > 0 else p.scale
        value, half = result.values[p.name] / ref, result.half_widths[p.name] / ref
        color = "b" if result.identifiable[p.name] else "0.6"
        lo, hi = (p.low / ref, p.high / ref) if not np.isfinite(half) else (value - half, value + half)
        ax.plot([lo, hi], [i, i], color=color, lw=2)
        ax.plot(value, i, "o", color=color, ms=3)
    ax.axvline(1.0, color="r", lw=0.6, ls="--")
    ax.set_yticks(range(len(priors)))
    ax.set_yticklabels([p.name.replace("panda_", "") for p in priors], fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel("fitted / prior value (95 % interval; grey: not determined by the data)", fontsize=8)
    ax.invert_yaxis()
    fig.tight_layout()
    _save_figure(fig, path)


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    tmp.replace(path)


def summary_lines(result: FitResult) -> list[str]:
    lines = [f"fit time {result.seconds:.1f} s; latency {result.latency_steps} command periods "
             f"({result.latency_steps * result.command_period_s * 1e3:.0f} ms) + time offset "
             f"{result.offset_s * 1e3:+.1f} ms; latency costs {result.latency_costs}",
             f"joint-position RMSE on fit data: {result.fit_rmse}", f"on held-out data: {result.holdout_rmse}",
             f"intervals: Newey-West, lag window {result.sysid.get('hac_lag')} samples, "
             f"{result.interval_inflation:.2f}x the white-noise width", "",
             f"{'parameter':<28}{'prior':>12}{'fitted':>12}{'95% +-':>12}  determined"]
    lines += [f"{p.name:<28}{p.nominal:>12.4g}{result.values[p.name]:>12.4g}{result.half_widths[p.name]:>12.3g}  "
              f"{'yes' if result.identifiable[p.name] else 'NO'}" for p in result.priors]
    undetermined = [p.name for p in result.priors if not result.identifiable[p.name]]
    if undetermined:
        lines += ["", f"not determined by these data (interval wider than {IDENTIFIABLE_FRACTION:.0%} of the "
                      f"prior's box): {', '.join(undetermined)}"]
    lines += ["", "warnings:"] + [f"  {w}" for w in result.warnings or ["none"]]
    return lines


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
    """PNGs of measured vs simulated joint trajectories (positions, velocities, residuals; prior and fitted;
    fit and held-out data) and of the parameter intervals, a text summary and, with `html`, a self-contained
    report.html (images inline: readable offline)."""
    import base64
    import html as html_lib

    import matplotlib

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    trajectories, intervals = folder / "trajectories.png", folder / "intervals.png"
    _trajectory_figure(result, trajectories)
    _interval_figure(result, intervals)
    lines = summary_lines(result)
    summary = folder / "summary.txt"
    _atomic_text(summary, "\n".join(lines + ["", "optimizer log:", result.sysid["log"]]) + "\n")
    written = [trajectories, intervals, summary]
    if html:
        def img(path: Path) -> str:
            return f'<img src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'

        status = ("<p style='color:#060'>The fit predicts the held-out data better than the prior.</p>"
                  if result.improved else
                  "<p style='color:#b00'><b>FAILED:</b> the fit does not predict the held-out data better than "
                  "the prior.</p>")
        page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{arm.robot.name} system identification"
                f"</title><style>body{{font-family:sans-serif;margin:1em}} img{{max-width:100%}}</style></head>"
                f"<body><h1>{arm.robot.name} system identification</h1>{status}"
                f"<pre>{html_lib.escape(chr(10).join(lines))}</pre><h2>Parameter intervals</h2>{img(intervals)}"
                f"<h2>Measured and simulated joint trajectories</h2>{img(trajectories)}</body></html>")
        report = folder / "report.html"
        _atomic_text(report, page)
        written.append(report)
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
    except FitFailed as err:
        print(f"robot-rl sysid fit: {err}", file=sys.stderr)
        return 3
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
                 config.use_velocity, config.threads, observed=observed, tick_s=config.tick_s,
                 offset_ticks=config.offset_ticks)
    out = Path(config.out)
    report = Path(config.report) if config.report else out.with_name(out.stem + "_report")
    write_report(result, arm, report, config.html_report)
    if config.view:
        from hardware.rerun_view import open_view

        view = open_view(config.view, "sysid fit", config.view_rrd or report / "fit.rrd")
        view_fit(view, result)
        print(f"view: {view.close() or 'streamed to the Rerun viewer'}")
    print("\n".join(summary_lines(result)[:4]))
    print(f"joint-position RMSE, fit data: prior {result.fit_rmse['prior']:.4g} -> fitted "
          f"{result.fit_rmse['fitted']:.4g} rad")
    if result.holdout_rmse:
        print(f"joint-position RMSE, held-out data: prior {result.holdout_rmse['prior']:.4g} -> fitted "
              f"{result.holdout_rmse['fitted']:.4g} rad")
    undetermined = [p.name for p in result.priors if not result.identifiable[p.name]]
    if undetermined:
        print(f"not determined by these data: {', '.join(undetermined)}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    if not result.improved and not config.force:
        which = "held-out" if result.holdout_rmse else "fit"
        rmse = result.holdout_rmse or result.fit_rmse
        raise FitFailed(f"FAILED: the fitted parameters predict the {which} data no better than the prior "
                        f"(joint RMSE {rmse['prior']:.4g} -> {rmse['fitted']:.4g} rad); {out} NOT written "
                        f"(force=true writes it anyway); see {report}/")
    save_params(to_robot_params(result, robot.name, base, config.control_hz), out)
    print(f"wrote {out} and {report}/ in {result.seconds:.1f} s fit time"
          + ("" if result.improved else " (forced: the fit did not beat the prior)"))
    return 0
