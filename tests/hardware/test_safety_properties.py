"""Property tests of the safety filter (hypothesis): over random and adversarial policy outputs, measured states,
clocks and operator events, no command outside the limits ever leaves; NaN and stale data hold; the e-stop
latches until reset; the start ramp bounds the initial speed; on the Panda the tool point stays in the box.

SAFETY_EXAMPLES=2000 runs a longer search (default 150 examples per test, a few seconds)."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware.safety import SafetyFilter, SafetyStatus
from hardware.safety_config import SafetyConfig, limits_from_robot
from tests.hardware.safety_helpers import ACC, DT, LOWER, NS, PERIOD_NS, UPPER, VEL, config, limits3

TOL = 1e-9
MARGIN = 0.05
MAX_STEP = 0.3
TIMEOUT_NS = int(0.1 * NS)
PASSED = {SafetyStatus.OK, SafetyStatus.LIMITED, SafetyStatus.WORKSPACE}
EXAMPLES = int(os.environ.get("SAFETY_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
anything = st.floats(allow_nan=True, allow_infinity=True)
small = st.floats(-0.2, 0.2, allow_nan=False)

# A policy output: relative to the last command (small or large), absolute, huge, non-finite, wrong shape, none.
command = st.one_of(
    st.tuples(st.just("rel"), st.lists(small, min_size=3, max_size=3)),
    st.tuples(st.just("rel"), st.lists(st.floats(-3, 3), min_size=3, max_size=3)),
    st.tuples(st.just("abs"), st.lists(finite, min_size=3, max_size=3)),
    st.tuples(st.just("abs"), st.lists(anything, min_size=3, max_size=3)),
    st.tuples(st.just("abs"), st.lists(st.sampled_from([1e308, -1e308, 0.0]), min_size=3, max_size=3)),
    st.tuples(st.just("abs"), st.lists(finite, min_size=0, max_size=5).filter(lambda v: len(v) != 3)),
    st.tuples(st.just("none"), st.none()),
    st.tuples(st.just("same"), st.none()),     # the previous command again: lets the arm travel far
    st.tuples(st.just("same"), st.none()),
)
# The arm: tracks the last command (exactly or with noise), is somewhere else, or reports garbage.
measured = st.one_of(
    st.tuples(st.just("track"), st.none()),
    st.tuples(st.just("noisy"), st.lists(st.floats(-0.05, 0.05), min_size=3, max_size=3)),
    st.tuples(st.just("abs"), st.lists(st.floats(-4, 4), min_size=3, max_size=3)),
    st.tuples(st.just("abs"), st.lists(anything, min_size=3, max_size=3)),
    st.tuples(st.just("abs"), st.lists(finite, min_size=2, max_size=2)),
)
step = st.fixed_dictionaries({
    "command": command,
    "measured": measured,
    "dq": st.one_of(st.none(), st.lists(st.floats(-5, 5), min_size=3, max_size=3),
                    st.lists(anything, min_size=3, max_size=3)),
    "dt_ns": st.one_of(st.just(PERIOD_NS), st.just(PERIOD_NS), st.integers(-PERIOD_NS, 20 * PERIOD_NS)),
    "age_ns": st.one_of(st.just(0), st.integers(-int(0.05 * NS), int(0.3 * NS))),
    "event": st.sampled_from([None, None, None, None, "estop_on", "estop_off", "reset"]),
})
start = st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3).map(
    lambda u: LOWER + MARGIN + np.array(u) * (UPPER - LOWER - 2 * MARGIN))


class InvariantChecker:
    """Checks every output against the limits, from nothing but the outputs and the inputs given. Limits are per
    elapsed time: dt is the time since the last output (capped at the period `dt`; the period itself for the first
    output of a stream and when the clock gave no positive elapsed time)."""

    def __init__(self, lower, upper, vel, acc, dt, max_step, margin):
        self.lower, self.upper, self.vel, self.acc, self.period = lower, upper, vel, acc, dt
        self.max_step, self.margin = max_step, margin
        self.history: list[np.ndarray] = []     # outputs of the current command stream
        self.last_step = np.zeros(len(lower))   # last output - the one before (the first: - the start position)
        self.last_vel = np.zeros(len(lower))    # last_step / the time it took
        self.last_dt = dt
        self.last_t = None                      # when the last output left
        self.band = None
        self.measured = None                    # last valid measured position

    def see_measured(self, q, dq=None) -> None:
        """A joint state counts when its positions are finite numbers and its velocities (if given) numbers, one
        per joint (a non-finite velocity means unknown: position-only hardware)."""
        n = len(self.lower)
        if _is_vector(q, n) and (dq is None or np.shape(dq) == (n,)):
            self.measured = np.asarray(q, dtype=float)

    def check(self, out, t_ns: int | None = None) -> None:
        if out.positions is None:
            self.history.clear()                # the stream is interrupted; a new one starts from measurements
            return
        q = out.positions
        assert q.shape == self.lower.shape and np.all(np.isfinite(q))
        assert np.all(q >= self.lower - TOL) and np.all(q <= self.upper + TOL), "outside the hard limits"
        dt = self.period
        if not self.history:                    # a stream starts where the arm is measured
            start = np.clip(self.measured, self.lower, self.upper)
            self.band = (np.minimum(self.lower + self.margin, start), np.maximum(self.upper - self.margin, start))
            self.history = [start]
        elif t_ns is not None and self.last_t is not None and t_ns > self.last_t:
            dt = min((t_ns - self.last_t) / NS, self.period)
        assert np.all(q >= self.band[0] - TOL) and np.all(q <= self.band[1] + TOL), "inside the margin"
        assert np.all(np.abs(q - self.measured) <= self.max_step + TOL), "max step from measured"
        step = q - self.history[-1]
        assert np.all(np.abs(step) <= self.vel * dt + TOL), "velocity"
        if len(self.history) >= 2:
            assert np.all(np.abs(step - self.last_vel * dt) <= self.acc * dt * dt + TOL), "acceleration"
        self.last_step, self.last_vel, self.last_dt, self.last_t = step, step / dt, dt, t_ns
        self.history = self.history[-1:] + [q]


def _is_vector(value, n) -> bool:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return False
    return arr.shape == (n,) and bool(np.all(np.isfinite(arr)))


def _run(flt: SafetyFilter, checker: InvariantChecker, q0, steps, dq0=None):
    """Feed a scenario; yield (input step, command sent, output, whether the arm tracks) after checking each."""
    t = 100 * NS
    last = np.asarray(q0, float)
    first, cmd = True, None
    for s in steps:
        event = s["event"]
        if event == "estop_on":
            flt.estop(True)
        elif event == "estop_off":
            flt.estop(False)
        elif event == "reset":
            assert flt.reset() == (not flt.estop_active)
        kind, value = s["command"]
        if kind != "same":
            cmd = None if kind == "none" else (last + np.asarray(value) if kind == "rel" else value)
        elif first:
            cmd = last
        mkind, mvalue = ("track", None) if first else s["measured"]
        meas = mvalue if mkind == "abs" else last + np.asarray(mvalue if mkind == "noisy" else 0.0)
        t += s["dt_ns"]
        dq = dq0 if first else s["dq"]
        checker.see_measured(meas, dq)
        out = flt.filter(cmd, meas, dq, t - s["age_ns"], t)
        checker.check(out, t)
        yield s, cmd, out, mkind == "track"
        if out.positions is not None:
            last = out.positions
        first = False


@SETTINGS
@given(q0=start, dq0=st.lists(st.floats(-3, 3), min_size=3, max_size=3), steps=st.lists(step, max_size=40),
       ramp=st.sampled_from([0.0, 0.3]))
def test_no_command_outside_the_limits_whatever_the_input(q0, dq0, steps, ramp):
    flt = SafetyFilter(limits3(), config(position_margin=MARGIN, max_step_from_measured=MAX_STEP, ramp_time_s=ramp))
    checker = InvariantChecker(LOWER, UPPER, VEL, ACC, DT, MAX_STEP, MARGIN)
    for s, _, out, _ in _run(flt, checker, q0, steps, dq0=dq0):
        if out.positions is None:
            assert out.status in (SafetyStatus.NOT_READY, SafetyStatus.FAULT_TRACKING), out
        assert flt.counters[out.status.value] >= 1


@SETTINGS
@given(q0=start, steps=st.lists(step, min_size=1, max_size=40))
def test_bad_commands_stale_data_and_clock_problems_never_pass_and_hold_brakes(q0, steps):
    flt = SafetyFilter(limits3(), config(position_margin=MARGIN, max_step_from_measured=MAX_STEP))
    checker = InvariantChecker(LOWER, UPPER, VEL, ACC, DT, MAX_STEP, MARGIN)
    prev_vel, streaming = np.zeros(3), False
    for i, (s, cmd, out, tracking) in enumerate(_run(flt, checker, q0, steps)):
        bad_command = cmd is None or not _is_vector(cmd, 3)
        if bad_command or s["age_ns"] > TIMEOUT_NS or (s["dt_ns"] <= 0 and i > 0):
            assert out.status not in PASSED, (s, out)
        if out.status.holding and tracking and streaming:
            # a hold of a tracking arm brakes: every joint slows by up to a_max dt, never speeds up
            dt = checker.last_dt
            assert np.all(np.abs(checker.last_vel) <= np.maximum(np.abs(prev_vel) - ACC * dt, 0.0) + TOL / dt)
        streaming = out.positions is not None
        prev_vel = checker.last_vel


@SETTINGS
@given(q0=start, steps=st.lists(step, min_size=1, max_size=40), press_at=st.integers(0, 10))
def test_estop_latches_until_released_and_reset(q0, steps, press_at):
    flt = SafetyFilter(limits3(), config(position_margin=MARGIN, max_step_from_measured=MAX_STEP))
    checker = InvariantChecker(LOWER, UPPER, VEL, ACC, DT, MAX_STEP, MARGIN)
    steps = [dict(s, event=None if s["event"] == "estop_on" else s["event"]) for s in steps]
    if press_at < len(steps):
        steps[press_at] = dict(steps[press_at], event="estop_on")
    latched = False
    for i, (s, _, out, _) in enumerate(_run(flt, checker, q0, steps)):
        latched = (latched or i == press_at) and not (s["event"] == "reset" and not flt.estop_active and i != press_at)
        if latched:
            assert out.status in (SafetyStatus.HOLD_ESTOP, SafetyStatus.NOT_READY, SafetyStatus.FAULT_TRACKING)
            assert flt.estop_latched


@SETTINGS
@given(q0=start, deltas=st.lists(st.lists(st.floats(-3, 3), min_size=3, max_size=3), min_size=5, max_size=60),
       ramp_s=st.floats(0.05, 1.0))
def test_start_ramp_limits_initial_speed(q0, deltas, ramp_s):
    flt = SafetyFilter(limits3(), config(position_margin=MARGIN, max_step_from_measured=10.0, ramp_time_s=ramp_s))
    q, t, t0, prev = np.asarray(q0), 50 * NS, None, None
    for delta in deltas:
        t += PERIOD_NS
        t0 = t if t0 is None else t0
        out = flt.filter(q + np.asarray(delta), q, np.zeros(3), t, t)
        scale = min(1.0, (t - t0) / NS / ramp_s)
        assert out.ramp == pytest.approx(scale)
        assert np.all(np.abs(out.positions - q) <= VEL * DT * scale + TOL)
        q = out.positions


@pytest.fixture(scope="module")
def panda_limits():
    from sim.kinematic_chain import chain_from_mjcf
    from sim.robot import load_robot

    robot = load_robot("panda")
    chain = chain_from_mjcf(robot.description, robot.arm_joints, robot.ee_site)
    limits = limits_from_robot(robot, [-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], chain)
    home_tool = limits.workspace.chain.tip_position(np.array(robot.home_qpos))
    box = (home_tool - [0.15, 0.2, 0.15], home_tool + [0.15, 0.2, 0.15])
    return robot, limits_from_robot(robot, box[0], box[1], chain)


@settings(max_examples=max(EXAMPLES // 4, 10), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(noise=st.lists(st.floats(-0.05, 0.05), min_size=7, max_size=7),
       segments=st.lists(st.tuples(st.one_of(st.lists(st.floats(-3, 3), min_size=7, max_size=7), st.none(),
                                             st.just([float("nan")] * 7)), st.integers(1, 40)),
                         min_size=1, max_size=5),
       hz=st.sampled_from([50.0, 100.0]))
def test_panda_tool_point_never_leaves_the_workspace_box(panda_limits, noise, segments, hz):
    robot, limits = panda_limits
    flt = SafetyFilter(limits, SafetyConfig(control_period_s=1 / hz, ramp_time_s=0.2))
    q = np.array(robot.home_qpos) + np.asarray(noise)
    ws = limits.workspace
    assert float(ws.violation(q)) == 0.0
    checker = InvariantChecker(limits.lower, limits.upper, limits.velocity, limits.acceleration, 1 / hz,
                               flt.config.max_step_from_measured, flt.config.position_margin)
    t = 10 * NS
    targets = [target for target, periods in segments for _ in range(periods)]   # each held a while
    for target in targets:
        t += int(NS / hz)
        checker.see_measured(q)
        out = flt.filter(None if target is None else np.asarray(target), q, None, t, t)
        checker.check(out)
        assert out.positions is not None
        assert float(ws.violation(out.positions)) <= 1e-9, "tool point left the box"
        q = out.positions
