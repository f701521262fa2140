"""Time one call of the safety filter on the Panda: joint rules only, with the workspace box (arm well inside,
and pressing against the wall, where the step is scaled back), at 50 and 100 Hz; and numpy forward kinematics.

    python benchmarks/safety_filter.py [--calls 2000]

Prints a table of per-call latency (microseconds, p50 / p99 / max) on this machine's one core.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from hardware.kinematics import KinematicChain
from hardware.safety import SafetyFilter
from hardware.safety_config import SafetyConfig, limits_from_robot
from sim.kinematic_chain import chain_from_mjcf
from sim.robot import load_robot


def _time_filter(limits, hz: float, calls: int, goal_offset: np.ndarray, home: np.ndarray) -> tuple[np.ndarray, dict]:
    flt = SafetyFilter(limits, SafetyConfig(control_period_s=1 / hz, ramp_time_s=0.0))
    q, t, out = home.copy(), 0, []
    for i in range(calls):
        t += int(1e9 / hz)
        target = home + goal_offset * np.sin(2 * np.pi * i / (2 * hz))
        start = time.perf_counter()
        result = flt.filter(target, q, None, t, t)
        out.append(time.perf_counter() - start)
        q = result.positions
    return np.array(out) * 1e6, dict(flt.counters)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    robot = load_robot("panda")
    chain_dict = chain_from_mjcf(robot.description, robot.arm_joints, robot.ee_site)
    chain = KinematicChain.from_dict(chain_dict)
    home = np.array(robot.home_qpos)
    tool = chain.tip_position(home)
    cases = {
        "joint rules only": limits_from_robot(robot),
        "box, arm inside": limits_from_robot(robot, tool - 0.5, tool + 0.5, chain_dict),
        "box, at the wall": limits_from_robot(robot, tool - 0.5, tool + [0.02, 0.5, 0.5], chain_dict),
    }
    offset = np.array([0.0, 0.4, 0.0, 0.4, 0.0, 0.0, 0.0])    # swings the tool forward and back
    print(f"{'case':<20} {'Hz':>5} {'p50 us':>8} {'p99 us':>8} {'max us':>8}  statuses")
    for name, limits in cases.items():
        for hz in (50.0, 100.0):
            times, counters = _time_filter(limits, hz, args.calls, offset, home)
            print(f"{name:<20} {hz:>5.0f} {np.percentile(times, 50):>8.0f} {np.percentile(times, 99):>8.0f} "
                  f"{times.max():>8.0f}  {counters}")
    for batch in (1, 16, 256):
        qs = np.tile(home, (batch, 1)) if batch > 1 else home
        reps = 300
        start = time.perf_counter()
        for _ in range(reps):
            chain.tip_position(qs)
        print(f"numpy FK, batch {batch:>3}: {(time.perf_counter() - start) / reps * 1e6:8.0f} us per call")


if __name__ == "__main__":
    main()
