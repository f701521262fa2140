"""PyBullet backend against MuJoCo: control steps per second (state and 64x64 pixels), forward kinematics and
render cost, and how closely a joint-space step command is tracked alike in both engines.

    python benchmarks/pybullet_backend.py [--steps 200]

Run it pinned to one core (`taskset -c 0`) for numbers comparable with the README.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def control_rate(backend, steps: int, pixels: bool) -> float:
    robot = backend.robot
    home = np.array(robot.home_qpos)
    backend.reset(home, 0.08, np.array([0.5, 0.0, 0.02, 1.0, 0.0, 0.0, 0.0]))
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps):
        target = np.clip(backend.arm_qpos() + rng.uniform(-0.05, 0.05, robot.n_arm), robot.lower, robot.upper)
        backend.command(target, float(rng.uniform(0.0, 0.08)))
        backend.step()
        backend.ee_pose()
        backend.object_pose()
        if pixels:
            backend.render(64, 64)
    return steps / (time.perf_counter() - start)


def per_call_us(fn, calls: int = 500) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def tracking(backend, target: np.ndarray, steps: int = 20) -> np.ndarray:
    home = np.array(backend.robot.home_qpos)
    backend.reset(home, 0.08, np.array([0.5, 0.0, 0.02, 1.0, 0.0, 0.0, 0.0]))
    backend.command(target, 0.0)
    out = []
    for _ in range(steps):
        backend.step()
        out.append(backend.arm_qpos())
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()

    from sim.backends.mujoco_backend import MuJoCoBackend
    from sim.backends.pybullet_backend import PyBulletBackend
    from sim.robot import load_robot

    robot = load_robot("panda")
    home = np.array(robot.home_qpos)
    backends = {"pybullet": PyBulletBackend(robot), "mujoco": MuJoCoBackend(robot)}
    print(f"{'engine':9s} {'state steps/s':>14s} {'pixels steps/s':>15s} {'FK us':>8s} {'render64 ms':>12s}")
    for name, backend in backends.items():
        state = control_rate(backend, args.steps, pixels=False)
        pixels = control_rate(backend, max(20, args.steps // 4), pixels=True)
        fk = per_call_us(lambda: backend.forward_kinematics(home))
        render = per_call_us(lambda: backend.render(64, 64), 100) / 1e3
        print(f"{name:9s} {state:14.0f} {pixels:15.0f} {fk:8.1f} {render:12.2f}")

    step = np.array([0.3, 0.2, -0.2, 0.3, 0.3, -0.3, 0.5])
    runs = {name: tracking(b, home + step) for name, b in backends.items()}
    diff = np.abs(runs["pybullet"] - runs["mujoco"])
    print("\nstep command home + [0.3, 0.2, -0.2, 0.3, 0.3, -0.3, 0.5] rad, 1 s at 20 Hz control")
    print("max |q_pybullet - q_mujoco| per joint (mrad): " + " ".join(f"{v * 1e3:.3f}" for v in diff.max(axis=0)))
    print(f"final error to target (mrad): pybullet {np.abs(runs['pybullet'][-1] - home - step).max() * 1e3:.3f}, "
          f"mujoco {np.abs(runs['mujoco'][-1] - home - step).max() * 1e3:.3f}")
    for backend in backends.values():
        backend.close()


if __name__ == "__main__":
    main()
