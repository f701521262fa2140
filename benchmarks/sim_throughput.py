"""Environment steps per second for every task, engine and observation type, on one core.

    python benchmarks/sim_throughput.py [--steps 1000] [--pixel-steps 200] [--csv out.csv]

Random actions, resets included when an episode ends; pixels are 64x64 (MuJoCo: offscreen EGL/OSMesa,
PyBullet: TinyRenderer). Prints a table (and writes a CSV when asked).
"""
from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

import argparse  # noqa: E402
import csv  # noqa: E402
import time  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import sim  # noqa: E402


def steps_per_second(task: str, backend: str, obs_type: str, steps: int) -> float:
    env = gym.make(sim.env_id(task), backend=backend, obs_type=obs_type)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]
    start = time.perf_counter()
    for action in actions:
        *_, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps per state-observation measurement")
    parser.add_argument("--pixel-steps", type=int, default=200, help="steps per pixel-observation measurement")
    parser.add_argument("--backends", nargs="+", default=["mujoco", "pybullet"])
    parser.add_argument("--csv", help="also write the table here")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # one core
    rows = []
    for backend in args.backends:
        for task in sim.TASK_NAMES:
            for obs_type in ("state", "pixels"):
                n = args.steps if obs_type == "state" else args.pixel_steps
                rows.append((task, backend, obs_type, steps_per_second(task, backend, obs_type, n)))
    print(f"{'task':<8}{'engine':<10}{'obs':<8}{'steps/s':>10}   (control steps at 20 Hz, 2 ms physics)")
    for task, backend, obs_type, sps in rows:
        print(f"{task:<8}{backend:<10}{obs_type:<8}{sps:>10.0f}")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["task", "engine", "obs", "steps_per_s"])
            writer.writerows([(t, b, o, f"{s:.1f}") for t, b, o, s in rows])


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
