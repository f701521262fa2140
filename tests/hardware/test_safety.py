"""One test per rule of the safety filter (hardware/safety.py), on a 3-joint arm and a planar 2-link arm."""
import numpy as np
import pytest

from hardware.safety import Limit, SafetyFilter, SafetyStatus
from tests.hardware.safety_helpers import (ACC, DT, NS, PERIOD_NS, UPPER, VEL, Driver, config, limits3,
                                           planar_limits, planar_tool)

HOME = np.array([0.0, 0.2, -1.0])
TOL = 1e-9


def started(**cfg) -> Driver:
    drv = Driver(SafetyFilter(limits3(), config(**cfg)), HOME)
    assert drv.step(HOME).status is SafetyStatus.OK
    return drv


def test_small_command_within_every_limit_passes_unchanged():
    drv = started()
    cmd = HOME + np.array([0.001, -0.001, 0.002])      # well under a*dt^2 = (0.004, 0.002, 0.008)
    out = drv.step(cmd)
    assert out.status is SafetyStatus.OK and out.limited == Limit.NONE
    np.testing.assert_array_equal(out.positions, cmd)


def test_acceleration_limit_from_rest_then_velocity_limit():
    drv = started(max_step_from_measured=10.0)
    far = HOME + np.array([1.0, 1.0, 1.0])
    steps = []
    for _ in range(40):
        out = drv.step(far)
        steps.append(drv.q - drv.prev)
    steps = np.array(steps)
    np.testing.assert_allclose(steps[0], ACC * DT**2)                    # first step: one acceleration quantum
    assert np.all(np.abs(np.diff(steps, axis=0)) <= ACC * DT**2 + TOL)     # never accelerates harder
    assert np.all(np.abs(steps) <= VEL * DT + TOL)                        # never faster than v_max
    assert np.isclose(np.abs(steps[:, 0]).max(), VEL[0] * DT)             # and does reach v_max on joint a
    assert drv.flt.limit_counters["ACCELERATION"] > 0 and drv.flt.limit_counters["VELOCITY"] > 0


def test_position_limit_keeps_margin_and_brakes_before_it():
    drv = started(max_step_from_measured=10.0)
    beyond = np.array([5.0, 5.0, 5.0])
    for _ in range(300):
        out = drv.step(beyond)
        assert np.all(drv.q <= UPPER - 0.05 + TOL)
        assert np.all(np.abs((drv.q - drv.prev)) <= VEL * DT + TOL)
    np.testing.assert_allclose(drv.q, UPPER - 0.05, atol=1e-9)            # arrives at the margin, at rest
    assert Limit.POSITION in out.limited and out.status is SafetyStatus.LIMITED


def test_max_step_relative_to_measured_state():
    drv = started(max_step_from_measured=0.05)
    lagging = HOME.copy()                                                  # the arm does not move
    for _ in range(30):
        out = drv.step(HOME + 1.0, measured=lagging)
        assert np.all(np.abs(out.positions - lagging) <= 0.05 + TOL)
    assert Limit.STEP in out.limited


def test_arm_far_from_commands_is_a_latched_tracking_fault_until_reset():
    drv = started(max_step_from_measured=0.05)
    pushed = HOME + np.array([0.5, 0.0, 0.0])
    out = drv.step(HOME, measured=pushed)
    assert out.positions is None and out.status is SafetyStatus.FAULT_TRACKING
    out = drv.step(HOME, measured=HOME)                                    # back in place: still latched
    assert out.positions is None and out.status is SafetyStatus.FAULT_TRACKING
    assert drv.flt.reset()
    out = drv.step(pushed, measured=pushed)                                # starts over from the measured state
    np.testing.assert_array_equal(out.positions, pushed)


@pytest.mark.parametrize("command, status", [
    (np.array([np.nan, 0.0, 0.0]), SafetyStatus.HOLD_INVALID_COMMAND),
    (np.array([0.0, np.inf, 0.0]), SafetyStatus.HOLD_INVALID_COMMAND),
    (np.array([0.0, 0.1]), SafetyStatus.HOLD_INVALID_COMMAND),
    ("0 0 0", SafetyStatus.HOLD_INVALID_COMMAND),
    ([[0.0, 0.1, 0.2]], SafetyStatus.HOLD_INVALID_COMMAND),
    (None, SafetyStatus.HOLD_POLICY_ERROR),
])
def test_bad_command_holds_position(command, status):
    drv = started()
    out = drv.step(command)
    assert out.status is status and out.status.holding
    np.testing.assert_array_equal(out.positions, HOME)
    assert drv.flt.counters[status.value] == 1


def test_hold_while_moving_brakes_within_acceleration_limits_to_rest():
    drv = started(max_step_from_measured=10.0)
    for _ in range(15):
        drv.step(HOME + np.array([1.5, 1.0, 1.4]))
    moving = drv.q - drv.prev
    assert np.all(np.abs(moving) > 5 * ACC * DT**2)
    speeds = [np.abs(moving)]
    for _ in range(40):
        out = drv.step(None)
        assert out.status is SafetyStatus.HOLD_POLICY_ERROR
        speeds.append(np.abs(drv.q - drv.prev))
    speeds = np.array(speeds)
    assert np.all(np.diff(speeds, axis=0) <= TOL)                          # only slows down
    assert np.all(np.abs(np.diff(speeds, axis=0)) <= ACC * DT**2 + TOL)    # no harder than a_max
    assert np.all(speeds[-1] == 0.0)                                       # and comes to rest
    assert np.abs(moving / (ACC * DT**2)).max() < 40


def test_stale_observation_holds_and_reports_age():
    drv = started()
    out = drv.step(HOME + 0.001, age_ns=int(0.15 * NS))
    assert out.status is SafetyStatus.HOLD_STALE_OBSERVATION and "150.0 ms old" in out.detail
    np.testing.assert_array_equal(out.positions, HOME)
    assert drv.step(HOME + 0.001, age_ns=int(0.05 * NS)).status is SafetyStatus.OK   # fresh again: resumes


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(age_ns=-int(0.05 * NS)), "in the future"),
    (dict(dt_ns=0), "backwards or stood still"),
    (dict(dt_ns=-PERIOD_NS), "backwards or stood still"),
])
def test_clock_problems_hold(kwargs, fragment):
    drv = started()
    out = drv.step(HOME + 0.001, **kwargs)
    assert out.status is SafetyStatus.HOLD_CLOCK and fragment in out.detail
    np.testing.assert_array_equal(out.positions, HOME)


def test_non_integer_time_holds():
    drv = started()
    out = drv.flt.filter(HOME, HOME, None, 1.5e10, float("nan"))
    assert out.status is SafetyStatus.HOLD_CLOCK
    np.testing.assert_array_equal(out.positions, HOME)


def test_invalid_measured_state_holds():
    drv = started()
    out = drv.step(HOME + 0.001, measured=np.array([0.0, np.nan, 0.0]))
    assert out.status is SafetyStatus.HOLD_INVALID_STATE
    out = drv.step(HOME + 0.001, measured=HOME, dq=np.zeros(2))
    assert out.status is SafetyStatus.HOLD_INVALID_STATE


def test_nothing_leaves_before_a_fresh_valid_joint_state():
    flt = SafetyFilter(limits3(), config())
    assert flt.filter(HOME, [np.nan] * 3, None, 10 * NS, 10 * NS).positions is None
    out = flt.filter(HOME, HOME, None, 10 * NS, 11 * NS)                   # 1 s old
    assert out.positions is None and out.status is SafetyStatus.NOT_READY
    out = flt.filter(HOME + 0.001, HOME, None, 12 * NS, 12 * NS)
    assert out.status is SafetyStatus.OK


def test_estop_latches_until_released_and_reset():
    drv = started()
    drv.flt.estop(True)
    assert drv.step(HOME + 0.001).status is SafetyStatus.HOLD_ESTOP
    assert not drv.flt.reset()                                             # refused while pressed
    assert drv.step(HOME + 0.001).status is SafetyStatus.HOLD_ESTOP
    drv.flt.estop(False)
    out = drv.step(HOME + 0.001)
    assert out.status is SafetyStatus.HOLD_ESTOP and "waiting for reset" in out.detail   # still latched
    np.testing.assert_array_equal(out.positions, HOME)
    assert drv.flt.reset()
    assert drv.step(HOME + 0.001).status is SafetyStatus.OK
    assert drv.flt.counters["reset_refused"] == 1 and drv.flt.counters["hold_estop"] == 3


def test_start_ramp_scales_the_velocity_limit_after_start_and_reset():
    drv = Driver(SafetyFilter(limits3(), config(ramp_time_s=1.0, max_step_from_measured=10.0)), HOME)
    far = HOME + np.array([1.5, 1.0, 1.0])
    t0 = drv.t + PERIOD_NS
    for _ in range(60):
        out = drv.step(far)
        ramp = min(1.0, (drv.t - t0) / NS)
        assert out.ramp == pytest.approx(ramp)
        if drv.prev is not None:
            assert np.all(np.abs(drv.q - drv.prev) <= VEL * DT * ramp + TOL)
    assert drv.flt.limit_counters["RAMP"] > 0
    assert drv.flt.reset()
    out = drv.step(far)
    assert out.ramp == 0.0


def test_start_inside_margin_never_goes_deeper():
    start = np.array([1.99, 0.2, -1.0])                                    # 0.01 from the upper limit of a
    drv = Driver(SafetyFilter(limits3(), config(max_step_from_measured=10.0)), start)
    for _ in range(50):
        drv.step(np.array([3.0, 0.2, -1.0]))
        assert drv.q[0] <= 1.99 + TOL
    for _ in range(50):                                                    # moving inward ...
        drv.step(np.array([0.0, 0.2, -1.0]))
    for _ in range(100):                                                   # ... the margin is back
        drv.step(np.array([3.0, 0.2, -1.0]))
        assert drv.q[0] <= UPPER[0] - 0.05 + TOL


def test_measured_velocity_at_start_is_continued_and_braked():
    drv = Driver(SafetyFilter(limits3(), config(max_step_from_measured=10.0)), HOME)
    out = drv.step(HOME, dq=np.array([1.0, 0.0, 0.0]))                    # arm moving at 1 rad/s when we start
    assert out.positions[0] == pytest.approx(HOME[0] + 1.0 * DT - ACC[0] * DT**2)


def test_workspace_box_scales_the_step_back_to_the_wall():
    limits = planar_limits(upper=(1.5, 10, 1))
    start = np.array([0.0, 1.6])                                           # tool at x = 1 + cos(1.6) ~ 0.97
    drv = Driver(SafetyFilter(limits, config(max_step_from_measured=10.0, workspace_resolution=1e-4)), start)
    statuses = set()
    for _ in range(200):
        out = drv.step(np.array([0.0, 0.0]))                               # straight arm: x = 2, outside
        statuses.add(out.status)
        assert planar_tool(drv.q)[0] <= 1.5 + 1e-9
    assert SafetyStatus.WORKSPACE in statuses
    assert planar_tool(drv.q)[0] == pytest.approx(1.5, abs=2e-3)           # stops at the wall, not short of it


def test_workspace_start_outside_allows_only_moving_back_in():
    limits = planar_limits(upper=(1.5, 10, 1))
    start = np.array([0.0, 0.5])                                           # x = 1 + cos(0.5) ~ 1.88: outside
    drv = Driver(SafetyFilter(limits, config(max_step_from_measured=10.0)), start)
    drv.step(start)
    for _ in range(20):
        out = drv.step(np.array([0.0, 0.0]))                               # further out: held
        np.testing.assert_allclose(drv.q, start, atol=1e-12)
    assert out.status is SafetyStatus.WORKSPACE
    for _ in range(100):
        outside_before = max(planar_tool(drv.q)[0] - 1.5, 0.0)
        drv.step(np.array([0.0, 2.0]))                                     # back in: allowed
        assert max(planar_tool(drv.q)[0] - 1.5, 0.0) <= outside_before + 1e-12
    assert planar_tool(drv.q)[0] < 1.5


def test_corrupted_internal_state_is_a_latched_internal_fault():
    drv = started()
    drv.flt._prev_vel = np.array([1.0 / DT, 0.0, 0.0])                    # faster than v_max: no valid next command
    out = drv.step(HOME)
    assert out.positions is None and out.status is SafetyStatus.FAULT_INTERNAL
    assert drv.step(HOME).status is SafetyStatus.FAULT_INTERNAL


def test_exception_inside_filter_is_an_internal_fault_not_a_crash(monkeypatch):
    drv = started()
    monkeypatch.setattr(drv.flt, "_bounds", lambda ramp: 1 / 0)
    out = drv.step(HOME)
    assert out.positions is None and out.status is SafetyStatus.FAULT_INTERNAL and "ZeroDivision" in out.detail


def test_margin_too_large_for_the_range_is_refused():
    with pytest.raises(ValueError, match="position_margin"):
        SafetyFilter(limits3(), config(position_margin=1.5))


# ---------------------------------------------------------------- limits per elapsed time, clocks, unknown velocity
def test_called_ten_times_faster_than_the_period_the_wall_clock_speed_stays_within_the_limits():
    drv = started(max_step_from_measured=10.0)
    far = HOME + np.array([1.5, 1.0, 1.0])
    times, positions = [drv.t], [drv.q.copy()]
    for _ in range(300):                                   # 0.6 s of calls every 2 ms at a 20 ms period
        drv.step(far, dt_ns=PERIOD_NS // 10)
        times.append(drv.t)
        positions.append(drv.q.copy())
    t, q = np.array(times) / NS, np.array(positions)
    velocity = np.diff(q, axis=0) / np.diff(t)[:, None]
    assert np.all(np.abs(velocity) <= VEL + 1e-6), np.abs(velocity).max(axis=0)
    acceleration = np.diff(velocity, axis=0) / np.diff(t)[1:, None]
    assert np.all(np.abs(acceleration) <= ACC + 1e-3), np.abs(acceleration).max(axis=0)
    assert np.abs(velocity[-1, 0]) == pytest.approx(VEL[0], rel=1e-6), "and it does reach full speed"


def test_a_late_call_gets_one_period_of_motion_not_more():
    drv = started(max_step_from_measured=10.0)
    for _ in range(40):
        drv.step(HOME + 2.0)                               # cruising at v_max
    drv.step(HOME + 2.0, dt_ns=5 * PERIOD_NS)
    assert np.all(np.abs(drv.q - drv.prev) <= VEL * DT + TOL)


def test_the_monotonic_clock_sets_the_elapsed_time_when_given():
    flt = SafetyFilter(limits3(), config(max_step_from_measured=10.0))
    q, mono = HOME.copy(), 10 * NS
    for i in range(100):
        wall = 10 * NS + i * PERIOD_NS           # the wall clock says one period per call ...
        mono += PERIOD_NS // 10                  # ... but only a tenth of it really passed
        out = flt.filter(HOME + 2.0, q, None, wall, wall, monotonic_ns=mono)
        if i:
            assert np.all(np.abs(out.positions - q) <= VEL * DT / 10 + TOL)
        q = out.positions


def test_a_backward_clock_step_holds_once_then_the_filter_goes_on():
    drv = started(ramp_time_s=0.2)
    for _ in range(20):
        drv.step(HOME + 0.3)
    drv.t -= 3600 * NS                                     # NTP stepped the clock back an hour
    assert drv.step(HOME + 0.3).status is SafetyStatus.HOLD_CLOCK
    statuses = [drv.step(HOME + 0.3).status for _ in range(5)]
    assert SafetyStatus.HOLD_CLOCK not in statuses and statuses[-1] in (SafetyStatus.OK, SafetyStatus.LIMITED)
    assert drv.flt.filter(HOME, drv.q, None, drv.t, drv.t).status is SafetyStatus.HOLD_CLOCK   # stood still
    assert drv.step(HOME + 0.3).status is not SafetyStatus.HOLD_CLOCK


def test_a_non_finite_velocity_is_unknown_not_an_invalid_state():
    """joint_state_broadcaster fills missing velocity interfaces with NaN (position-only hardware)."""
    drv = Driver(SafetyFilter(limits3(), config()), HOME)
    nan = np.full(3, np.nan)
    out = drv.step(HOME + 0.001, dq=nan)
    assert out.status is SafetyStatus.OK and out.positions is not None
    assert drv.step(HOME + 0.002, dq=np.array([np.nan, 0.1, np.inf])).status is SafetyStatus.OK
    assert drv.step(HOME, dq=np.zeros(2)).status is SafetyStatus.HOLD_INVALID_STATE       # wrong length still is
