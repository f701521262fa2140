"""The safety filter every joint command passes through before it leaves the policy node.

Transport-independent and numpy-only: the node calls, once per control period,

    safe = SafetyFilter(limits, config).filter(command, measured_q, measured_dq, obs_stamp_ns, now_ns,
                                               time.monotonic_ns())
    if safe.positions is not None: publish(safe.positions)
    log/publish safe.status, safe.limited, safe.detail

with `command=None` when the policy raised or produced nothing, `estop(active)` on every e-stop message, and
`reset()` on the operator's reset.

Invariant (checked again on every output, with 1e-9 rad numerical tolerance): every command that leaves has the
right length, is finite, and satisfies, per joint, with q_prev, q_prev2 the previous two commands that left, dt
the real time since q_prev left (capped at the control period) and dt_prev the time between q_prev2 and q_prev
  position      lower + margin <= q <= upper - margin   (the margin narrows to the start position if the arm
                                                         starts inside it, and widens no further than that)
  velocity      |q - q_prev| / dt <= v_max
  acceleration  |(q - q_prev) / dt - (q_prev - q_prev2) / dt_prev| <= a_max * dt
  step          |q - measured_q| <= max_step_from_measured   (measured_q: the latest finite joint state given,
                                                              stale or not)
whatever the input (NaN, inf, huge values, wrong length, stale or missing observations, clock jumps, calls
faster or slower than the period: limits hold per elapsed time, so called 10x faster the arm is not 10x faster;
a call later than one period gets one period's step, never more). The time between commands comes from
`monotonic_ns` (a clock that does not step) when given, else from `now_ns`. The first
three together are always satisfiable because the filter also keeps every joint able to brake to rest (braking
at a_max) before its position limit and before the edge of the max-step band around the measured position.
When the step rule still cannot be met (the measured arm jumped away from the commands: blocked, pushed, or a
sensor fault), no command leaves (positions None: the controller keeps its last target), and the filter latches
FAULT_TRACKING until `reset()`; a reset after a fault starts a new command stream from the measured state.

Hold means "stop as fast as the acceleration limits allow, then stay": the command brakes to rest (at most
v_max / a_max seconds, 0.29 s for the Panda at full speed) rather than jumping to a halt, since a jump would be
a command outside the acceleration limits.

Workspace box (choice: scale the step back, not hold): the tool point must stay in an axis-aligned box. A
command is accepted when the whole braking path that would follow it (the commands a hold would send, the step
shrinking by a_max dt^2 per period) keeps the tool point in the box; otherwise the step is scaled back along the
straight joint-space segment from the braking command (the smallest step the limits allow) to the clipped
command, to the largest fraction that passes (resolution `workspace_resolution` of the step). So the arm slows
down before the wall and stops at it, and a hold never carries it out. The box is checked at the commands sent
(not between them). An arm that starts outside may only move so that its braking path gets no further out.

Start ramp: the velocity limit scales linearly from 0 to v_max over `ramp_time_s` of elapsed time after start
and after each reset (never forcing a deceleration harder than a_max).

Clocks (what the nodes assume between hosts; both are SafetyConfig fields, policy_node's safety.* parameters): a
joint state stamped more than `future_stamp_tolerance_s` (10 ms) ahead of `now_ns` is a clock problem (hold); one
older than `observation_timeout_s` (100 ms) is stale (hold). So the hosts' clocks must agree to well within 10 ms
(chrony/PTP on the robot network). `now_ns` going back or standing still holds that one call; the filter then
goes on from the new time (no hold until the clock catches up with the old one).

Measured velocities: None or non-finite entries are unknown (position-only hardware), taken as 0 where the filter
uses them (continuing the measured motion at the start of a command stream); the node estimates them.

E-stop: `estop(True)` latches HOLD_ESTOP; `reset()` clears it only while the e-stop input is released.
"""
from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass

import numpy as np

from hardware.safety_config import SafetyConfig, SafetyLimits

TOLERANCE = 1e-9   # rad: numerical slack of the final invariant check


class SafetyStatus(str, enum.Enum):
    """Why the last command is what it is (highest-priority reason); `str` so nodes can publish/log it."""
    OK = "ok"                                          # the policy's command, unchanged
    LIMITED = "limited"                                # clipped by joint limits (see SafeCommand.limited)
    WORKSPACE = "workspace"                            # step scaled back to keep the tool point in the box
    HOLD_ESTOP = "hold_estop"                          # e-stop latched: braking to rest / holding
    HOLD_POLICY_ERROR = "hold_policy_error"            # the policy raised or produced no command
    HOLD_INVALID_COMMAND = "hold_invalid_command"      # NaN/inf, wrong length or not numbers
    HOLD_STALE_OBSERVATION = "hold_stale_observation"  # joint states older than the timeout
    HOLD_INVALID_STATE = "hold_invalid_state"          # measured joint state NaN/inf or wrong length
    HOLD_CLOCK = "hold_clock"                          # time went backwards, or a stamp lies in the future
    NOT_READY = "not_ready"                            # no fresh valid joint state yet: nothing to send
    FAULT_TRACKING = "fault_tracking"                  # arm too far from the commands: nothing sent until reset
    FAULT_INTERNAL = "fault_internal"                  # the filter itself failed: nothing sent until reset

    @property
    def holding(self) -> bool:
        return self.value.startswith("hold_")


class Limit(enum.Flag):
    """Which rules changed the command this period."""
    NONE = 0
    POSITION = enum.auto()
    VELOCITY = enum.auto()
    ACCELERATION = enum.auto()
    BRAKING = enum.auto()       # slowed so the joint can still stop before its position limit
    STEP = enum.auto()          # max step from the measured position
    RAMP = enum.auto()          # the start ramp's reduced velocity limit
    WORKSPACE = enum.auto()


@dataclass(frozen=True)
class SafeCommand:
    positions: np.ndarray | None    # (n,) rad to publish, or None: publish nothing
    status: SafetyStatus
    limited: Limit = Limit.NONE
    detail: str = ""                # one human-readable line for the log
    ramp: float = 1.0               # current start-ramp velocity scale in [0, 1]


class SafetyFilter:
    def __init__(self, limits: SafetyLimits, config: SafetyConfig) -> None:
        self.limits = limits
        self.config = config
        self.counters: Counter[str] = Counter()        # status value -> periods; also "reset", "reset_refused"
        self.limit_counters: Counter[str] = Counter()  # Limit name -> number of periods it acted
        n, period = limits.n, config.control_period_s
        self._period = period
        self._period_astep = limits.acceleration * period * period   # the hold's deceleration per period
        self._hard_lower = limits.lower + config.position_margin
        self._hard_upper = limits.upper - config.position_margin
        if np.any(self._hard_lower >= self._hard_upper):
            raise ValueError(f"safety config: position_margin {config.position_margin} leaves no room between "
                             f"the limits {limits.lower.tolist()} .. {limits.upper.tolist()}")
        self._n = n
        self._prev: np.ndarray | None = None       # last command that left
        self._prev_vel = np.zeros(n)               # (last command - the one before) / the time between them
        self._last_tick_ns: int | None = None      # when the last command left (monotonic_ns, else now_ns)
        self._lower = self._hard_lower.copy()      # effective (margin possibly narrowed at start) limits
        self._upper = self._hard_upper.copy()
        self._measured: np.ndarray | None = None   # last valid measured position
        self._last_now_ns: int | None = None
        self._ramp_s: float | None = 0.0           # elapsed time of the start ramp (None: restarts next call)
        self._estop_input = False
        self._estop_latched = False
        self._fault: SafetyStatus | None = None
        self._fault_detail = ""
        self._set_dt(period)

    # --- operator inputs -----------------------------------------------------------------------
    def estop(self, active: bool) -> None:
        """Feed every e-stop message here; active latches the hold until `reset()`."""
        self._estop_input = bool(active)
        if self._estop_input:
            self._estop_latched = True

    @property
    def estop_active(self) -> bool:
        """The e-stop input as last given to `estop()`."""
        return self._estop_input

    @property
    def estop_latched(self) -> bool:
        return self._estop_latched

    @property
    def fault(self) -> SafetyStatus | None:
        return self._fault

    def reset(self) -> bool:
        """Clear a latched e-stop or fault and restart the start ramp. Refused (returns False) while the e-stop
        input is active. After a fault the next command starts over from the measured state."""
        if self._estop_input:
            self.counters["reset_refused"] += 1
            return False
        self._estop_latched = False
        if self._fault is not None:
            self._fault = None
            self._prev = None          # the command stream was interrupted: re-initialise from measurements
        self._ramp_s = None            # the ramp restarts at the next call
        self.counters["reset"] += 1
        return True

    # --- the filter ------------------------------------------------------------------------------
    def filter(self, command, measured_q, measured_dq, obs_stamp_ns: int, now_ns: int,
               monotonic_ns: int | None = None) -> SafeCommand:
        """One control period. `command`: joint targets (rad) from the policy, or None if it failed;
        `measured_q`/`measured_dq` (None or non-finite entries: unknown, taken as 0): the latest joint state and
        its stamp `obs_stamp_ns`; `now_ns`: the node's clock (int ns, same clock as the stamps); `monotonic_ns`:
        a clock that never steps (time.monotonic_ns()), for the time since the last command; without it that
        time comes from now_ns."""
        try:
            result = self._filter(command, measured_q, measured_dq, obs_stamp_ns, now_ns, monotonic_ns)
        except Exception as err:  # noqa: BLE001 - any failure of the filter itself must stop commands, not the node
            self._fault, self._fault_detail = SafetyStatus.FAULT_INTERNAL, f"safety filter error: {err!r}"
            result = SafeCommand(None, SafetyStatus.FAULT_INTERNAL, detail=self._fault_detail)
        self.counters[result.status.value] += 1
        for flag in Limit:
            if flag and flag in result.limited:
                self.limit_counters[flag.name] += 1
        return result

    def _filter(self, command, measured_q, measured_dq, obs_stamp_ns, now_ns, monotonic_ns) -> SafeCommand:
        # Time: a clock that goes back or stands still means hold for that call, then the filter goes on from the
        # new time (a step back does not hold until the clock catches up); a future stamp means hold.
        hold: SafetyStatus | None = None
        detail = ""
        now = _as_int(now_ns)
        stamp = _as_int(obs_stamp_ns)
        if now is None:
            hold, detail = SafetyStatus.HOLD_CLOCK, f"now_ns is not an integer time stamp: {now_ns!r}"
        elif self._last_now_ns is not None and now <= self._last_now_ns:
            hold, detail = SafetyStatus.HOLD_CLOCK, f"time went backwards or stood still: {now} <= {self._last_now_ns}"
        if now is not None:
            self._last_now_ns = now
        tick = _as_int(monotonic_ns) if monotonic_ns is not None else now

        q_meas = _as_vector(measured_q, self._n)
        dq_meas = _as_velocity(measured_dq, self._n)
        state_ok = q_meas is not None and dq_meas is not None
        if hold is None and not state_ok:
            hold, detail = SafetyStatus.HOLD_INVALID_STATE, (f"measured joint state must be {self._n} finite "
                                                             f"values, got q={measured_q!r} dq={measured_dq!r}")
        if hold is None:
            if stamp is None:
                hold, detail = SafetyStatus.HOLD_STALE_OBSERVATION, f"no valid observation stamp: {obs_stamp_ns!r}"
            else:
                age = (now - stamp) * 1e-9
                if age > self.config.observation_timeout_s:
                    hold, detail = SafetyStatus.HOLD_STALE_OBSERVATION, (
                        f"joint state is {age * 1e3:.1f} ms old (timeout {self.config.observation_timeout_s * 1e3:.0f} ms)")
                elif -age > self.config.future_stamp_tolerance_s:
                    hold, detail = SafetyStatus.HOLD_CLOCK, f"joint state stamped {-age * 1e3:.1f} ms in the future"
        if state_ok:   # the latest joint values known, even when old: the step rule refers to them
            self._measured = q_meas

        if self._fault is not None:
            return SafeCommand(None, self._fault, detail=self._fault_detail + " (latched until reset)")
        if self._prev is None:
            if hold is not None:
                return SafeCommand(None, SafetyStatus.NOT_READY, detail=f"not started: {detail}")
            self._start(q_meas, dq_meas)
            self._set_dt(self._period)
        else:
            # Limits per elapsed time: the step bounds of this call come from the real time since the last command
            # (at most one period: a late call gets no more than one period's step); unknown (clock stepped back
            # without a monotonic clock) -> one period, as if on time.
            elapsed = None if tick is None or self._last_tick_ns is None else (tick - self._last_tick_ns) * 1e-9
            self._set_dt(min(elapsed, self._period) if elapsed is not None and elapsed > 0 else self._period)
            self._ramp_s = 0.0 if self._ramp_s is None else self._ramp_s + self._dt

        # What the policy asked for, unless something says hold (e-stop first: it is the operator's word).
        if self._estop_latched:
            hold, detail = SafetyStatus.HOLD_ESTOP, "e-stop latched" + (" (input released, waiting for reset)"
                                                                        if not self._estop_input else "")
        if hold is None:
            if command is None:
                hold, detail = SafetyStatus.HOLD_POLICY_ERROR, "the policy produced no command"
            else:
                target = _as_vector(command, self._n)
                if target is None:
                    hold, detail = SafetyStatus.HOLD_INVALID_COMMAND, (
                        f"command must be {self._n} finite values, got {_short(command)}")
        if hold is not None:
            target = self._prev.copy()

        ramp = self._ramp()
        lo, hi, flags_of = self._bounds(ramp)
        if lo is None:
            return self._latch(SafetyStatus.FAULT_INTERNAL, "no command satisfies the joint limits (filter state "
                                                            "corrupted)")
        if np.any(lo > hi + TOLERANCE):
            return self._latch(SafetyStatus.FAULT_TRACKING, (
                f"arm too far from the commands: measured {_fmt(self._measured)}, last command {_fmt(self._prev)}, "
                f"max step {self.config.max_step_from_measured} rad"))
        hi = np.maximum(lo, hi)                        # lo > hi only by rounding here
        q = np.clip(target, lo, hi)
        limited = flags_of(target, q) if hold is None else Limit.NONE

        if self.limits.workspace is not None:
            q, scaled = self._workspace(q, np.clip(self._prev, lo, hi))
            if scaled and hold is None:
                limited |= Limit.WORKSPACE

        problem = self._check(q)
        if problem:
            return self._latch(SafetyStatus.FAULT_INTERNAL, f"invariant check failed: {problem}")
        self._commit(q)
        self._last_tick_ns = tick
        if hold is not None:
            status = hold
        elif Limit.WORKSPACE in limited:
            status, detail = SafetyStatus.WORKSPACE, "step scaled back at the workspace box"
        elif limited:
            status, detail = SafetyStatus.LIMITED, f"clipped by {limited.name}"
        else:
            status = SafetyStatus.OK
        return SafeCommand(q.copy(), status, limited, detail, ramp)

    # --- internals ---------------------------------------------------------------------------------
    def _start(self, q_meas: np.ndarray, dq_meas: np.ndarray) -> None:
        """First command of a stream: from the measured position, continuing the measured motion (clipped so it
        can still brake before the limits), with margins narrowed to where the arm is if it starts inside one."""
        q0 = np.clip(q_meas, self.limits.lower, self.limits.upper)
        self._lower = np.minimum(self._hard_lower, q0)
        self._upper = np.maximum(self._hard_upper, q0)
        velocity = np.clip(dq_meas, -self.limits.velocity, self.limits.velocity)
        self._prev = q0
        lo, hi = self._stop_box()
        a = self.limits.acceleration   # v^2 / (2 a) <= room: the joint can still stop before the box edges
        self._prev_vel = np.clip(velocity, -np.sqrt(2 * a * np.maximum(q0 - lo, 0.0)),
                                 np.sqrt(2 * a * np.maximum(hi - q0, 0.0)))
        self._ramp_s = 0.0

    def _set_dt(self, dt: float) -> None:
        """The step bounds of a call `dt` seconds after the last command: velocity v_max dt, change of velocity
        a_max dt (so of step a_max dt^2), and the step the last velocity carries on for."""
        self._dt = dt
        self._vstep = self.limits.velocity * dt
        self._astep = self.limits.acceleration * dt * dt
        self._prev_step = self._prev_vel * dt

    def _stop_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Where every joint must be able to come to rest: inside the position limits and within the max step
        of the measured position (assuming the arm stays where it is measured)."""
        ms = self.config.max_step_from_measured
        return np.maximum(self._lower, self._measured - ms), np.minimum(self._upper, self._measured + ms)

    def _braking_reach(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Largest step d >= 0 with d^2 / (2 a_max dt^2) <= (b - a) - d: after it, the joint still stops within
        the distance b - a, braking by a_max dt^2 per period."""
        room = np.maximum(b - a, 0.0)
        return self._astep * (np.sqrt(1.0 + 2.0 * room / self._astep) - 1.0)

    def _ramp(self) -> float:
        if self.config.ramp_time_s == 0:
            return 1.0
        return float(np.clip((self._ramp_s or 0.0) / self.config.ramp_time_s, 0.0, 1.0))

    def _bounds(self, ramp: float):
        """Per-joint interval every rule allows for the next command (None when empty), and a function naming
        the rules that bind."""
        q, d = self._prev, self._prev_step
        # The ramp never forces a deceleration above a_max (|d| - a dt^2), so a reset while moving stays feasible.
        vstep = np.minimum(np.maximum(self._vstep * ramp, np.abs(d) - self._astep), self._vstep)
        stop_lo, stop_hi = self._stop_box()
        rules = {
            Limit.POSITION: (self._lower, self._upper),
            Limit.VELOCITY: (q - self._vstep, q + self._vstep),
            Limit.ACCELERATION: (q + d - self._astep, q + d + self._astep),
            Limit.BRAKING: (q - self._braking_reach(stop_lo, q), q + self._braking_reach(q, stop_hi)),
            Limit.STEP: (self._measured - self.config.max_step_from_measured,
                         self._measured + self.config.max_step_from_measured),
        }
        if ramp < 1.0:
            rules[Limit.RAMP] = (q - vstep, q + vstep)
        # Rules on the command stream alone are always satisfiable (the braking rule keeps them so); only the
        # measured state can make the set empty: a jump of the arm away from the commands (tracking fault).
        stream_rules = [r for flag, r in rules.items() if flag not in (Limit.STEP, Limit.BRAKING)]
        lo = np.max([r[0] for r in stream_rules], axis=0)
        hi = np.min([r[1] for r in stream_rules], axis=0)
        if np.any(lo > hi + TOLERANCE):
            return None, None, None
        lo = np.maximum(lo, np.maximum(rules[Limit.STEP][0], rules[Limit.BRAKING][0]))
        hi = np.minimum(hi, np.minimum(rules[Limit.STEP][1], rules[Limit.BRAKING][1]))

        def flags_of(target: np.ndarray, q: np.ndarray) -> Limit:
            """The rules that bind: the target lies beyond their bound and the command sits on it."""
            flags = Limit.NONE
            for flag, (rlo, rhi) in rules.items():
                if np.any(((target < rlo) & (q <= rlo + TOLERANCE)) | ((target > rhi) & (q >= rhi - TOLERANCE))):
                    flags |= flag
            return flags

        return lo, hi, flags_of

    def _workspace(self, q: np.ndarray, q_ref: np.ndarray) -> tuple[np.ndarray, bool]:
        """Scale the step from q_ref (the braking command) towards q back to the largest fraction from which the
        arm, braking at a_max, stays no further outside the box than from q_ref (inside, when it is inside)."""
        violation = float(self._path_violation(q[None])[0])
        if violation <= 1e-12:
            return q, False
        allowed = float(self._path_violation(q_ref[None])[0]) + 1e-12
        if violation <= allowed:
            return q, False
        s_ok, s_bad = 0.0, 1.0
        while s_bad - s_ok > self.config.workspace_resolution:   # 16 fractions per FK batch
            s = np.linspace(s_ok, s_bad, 17)[1:]
            bad = self._path_violation(q_ref + s[:, None] * (q - q_ref)) > allowed   # bad[-1] is True (s_bad)
            first_bad = int(np.argmax(bad))        # keep only the prefix before the first bad fraction
            s_ok, s_bad = (float(s[first_bad - 1]) if first_bad > 0 else s_ok), float(s[first_bad])
        return q_ref + s_ok * (q - q_ref), True

    def _path_violation(self, qs: np.ndarray) -> np.ndarray:
        """For candidate commands qs (m, n): the largest distance outside the box of the tool point along the
        braking path that would follow each (the commands a hold sends: the step shrinks by a_max dt^2 per
        period until rest). Checking the whole path keeps the box hard: the filter never sends a command from
        which it could not stop inside."""
        d = (qs - self._prev) * (self._period / self._dt)   # the same velocity as steps of one period
        astep = self._period_astep
        periods = int(np.ceil(np.max(np.abs(d) / astep)))
        k = np.arange(1, periods + 1)[:, None]
        steps = np.sign(d)[:, None, :] * np.maximum(np.abs(d)[:, None, :] - k * astep, 0.0)
        path = np.concatenate([qs[:, None, :], qs[:, None, :] + np.cumsum(steps, axis=1)], axis=1)
        return self.limits.workspace.violation(path).max(axis=1)

    def _check(self, q: np.ndarray) -> str:
        """The invariant, checked directly on what is about to leave (defence against a bug in the clipping)."""
        tol = TOLERANCE
        step = q - self._prev
        checks = {
            "finite": bool(np.all(np.isfinite(q))) and q.shape == (self._n,),
            "position": bool(np.all((q >= self._lower - tol) & (q <= self._upper + tol))),
            "velocity": bool(np.all(np.abs(step) <= self._vstep + tol)),
            "acceleration": bool(np.all(np.abs(step - self._prev_step) <= self._astep + tol)),
            "step": bool(np.all(np.abs(q - self._measured) <= self.config.max_step_from_measured + tol)),
        }
        return ", ".join(name for name, ok in checks.items() if not ok)

    def _commit(self, q: np.ndarray) -> None:
        step = q - self._prev
        self._prev_vel, self._prev = step / self._dt, q
        # A narrowed margin widens back no further than where the joint is (plus the room it needs to brake).
        stop = step * step / (2.0 * self._astep)
        self._lower = np.minimum(self._hard_lower, np.maximum(self._lower, q - np.where(step < 0, stop, 0.0)))
        self._upper = np.maximum(self._hard_upper, np.minimum(self._upper, q + np.where(step > 0, stop, 0.0)))

    def _latch(self, status: SafetyStatus, detail: str) -> SafeCommand:
        self._fault, self._fault_detail = status, detail
        return SafeCommand(None, status, detail=detail)


def _as_int(value) -> int | None:
    if isinstance(value, (bool, np.bool_)) or value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    return None


def _as_vector(value, n: int) -> np.ndarray | None:
    """Finite float vector of length n, or None."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError, OverflowError):
        return None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        return None
    return arr.copy()


def _as_velocity(value, n: int) -> np.ndarray | None:
    """Measured joint velocities: None or non-finite entries mean unknown (position-only hardware: ros2_control's
    joint_state_broadcaster fills missing velocity interfaces with NaN), taken as 0; None when not n numbers."""
    if value is None:
        return np.zeros(n)
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError, OverflowError):
        return None
    if arr.shape != (n,):
        return None
    return np.where(np.isfinite(arr), arr, 0.0)


def _fmt(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
