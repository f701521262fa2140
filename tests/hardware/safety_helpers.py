"""Shared builders for the safety-filter tests: a 3-joint arm without workspace (fast), a planar 2-link arm with a
workspace box (tool point known in closed form)."""
import numpy as np

from hardware.safety import SafetyFilter
from hardware.safety_config import SafetyConfig, SafetyLimits, Workspace
from hardware.kinematics import KinematicChain

DT = 0.02
NS = 1_000_000_000
PERIOD_NS = int(DT * NS)
LOWER = np.array([-2.0, -1.0, -3.0])
UPPER = np.array([2.0, 1.5, 0.5])
VEL = np.array([2.0, 1.0, 3.0])
ACC = np.array([10.0, 5.0, 20.0])


def limits3() -> SafetyLimits:
    return SafetyLimits(("a", "b", "c"), LOWER, UPPER, VEL, ACC)


def config(**overrides) -> SafetyConfig:
    values = dict(control_period_s=DT, position_margin=0.05, max_step_from_measured=0.3,
                  observation_timeout_s=0.1, ramp_time_s=0.0)
    values.update(overrides)
    return SafetyConfig(**values)


def planar_chain() -> KinematicChain:
    """Two 1 m links, both hinges about z: tool = (cos q1 + cos(q1+q2), sin q1 + sin(q1+q2), 0)."""
    hinge = {"type": "hinge", "quat": [1, 0, 0, 0], "axis": [0, 0, 1], "ref": 0.0}
    return KinematicChain.from_dict({
        "format": "robot_rl.kinematic_chain", "version": 1,
        "joints": [dict(hinge, name="s", pos=[0, 0, 0]), dict(hinge, name="e", pos=[1, 0, 0])],
        "tip": {"name": "tool", "pos": [1, 0, 0], "quat": [1, 0, 0, 0]}})


def planar_tool(q) -> np.ndarray:
    q = np.asarray(q)
    return np.array([np.cos(q[0]) + np.cos(q[0] + q[1]), np.sin(q[0]) + np.sin(q[0] + q[1]), 0.0])


def planar_limits(lower=(-10, -10, -1), upper=(1.5, 10, 1)) -> SafetyLimits:
    ws = Workspace(np.array(lower, float), np.array(upper, float), planar_chain())
    return SafetyLimits(("s", "e"), np.array([-3.0, -3.0]), np.array([3.0, 3.0]), np.array([2.0, 2.0]),
                        np.array([50.0, 50.0]), workspace=ws)


class Driver:
    """Calls the filter once per period with a perfectly tracking arm (measured = last command), like a stiff
    position-controlled robot; counts time in ns."""

    def __init__(self, flt: SafetyFilter, q0, t0_ns: int = 10 * NS):
        self.flt, self.q, self.t = flt, np.asarray(q0, float), t0_ns
        self.prev = None

    def step(self, command, measured=None, age_ns: int = 0, dt_ns: int = PERIOD_NS, dq=None):
        self.t += dt_ns
        meas = self.q if measured is None else measured
        out = self.flt.filter(command, meas, dq, self.t - age_ns, self.t)
        if out.positions is not None:
            self.prev, self.q = self.q, out.positions
        return out
