"""Actively designed (Fisher information, ASID-style) vs random excitation: parameter error of the sysid fit at
equal recording length and limits, over several hidden-parameter arms (seeds).

Each seed draws a hidden parameter set for a simulated arm, designs one active trajectory (in the nominal
simulator, as a user would before knowing the robot) and draws one random feasible trajectory from the same
sampler, records both on the hidden arm (rosbag2/MCAP, read back), fits, and compares the fitted parameters
with the hidden ones. Error of a parameter = |fitted - true| / prior scale (armature 0.1 kg m^2, kp its nominal,
friction loss 1 N m, payload 0.5 kg).

    .venv/bin/python benchmarks/sysid_excitation.py --seeds 4 --duration 6
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def hidden_parameters(rng: np.random.Generator, priors) -> dict[str, float]:
    values = {}
    for p in priors:
        kind = p.name.split("/")[0]
        if kind == "armature":
            values[p.name] = p.nominal * rng.uniform(0.6, 2.0)
        elif kind == "kp":
            values[p.name] = p.nominal * rng.uniform(0.7, 1.1)
        elif kind == "frictionloss":
            values[p.name] = rng.uniform(0.0, 1.0)
        elif kind == "damping":
            values[p.name] = rng.uniform(0.5, 3.0)
        elif kind == "payload_mass":
            values[p.name] = rng.uniform(0.0, 1.0)
    values["action_latency"] = int(rng.integers(0, 3))
    values["obs_noise"] = 5e-4
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=6.0, help="recording length, s")
    parser.add_argument("--joints", default="panda_joint2,panda_joint4,panda_joint6")
    parser.add_argument("--kinds", default="armature,kp,frictionloss")
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--max-iters", type=int, default=30)
    parser.add_argument("--csv", default="benchmarks/results/sysid_excitation.csv")
    args = parser.parse_args()

    import logging

    from calibration import excitation as ex
    from calibration import fit as F
    from calibration.arm_model import ArmModel
    from calibration.recording_io import read_recording, write_recording
    from calibration.simulated_arm import run_commands
    from sim.robot import load_robot

    logging.getLogger("absl").setLevel(logging.ERROR)
    robot = load_robot("panda")
    arm = ArmModel(robot)
    joints = tuple(args.joints.split(","))
    index = [robot.arm_joints.index(j) for j in joints]
    priors = arm.default_priors(joints, tuple(args.kinds.split(",")), payload=True)
    home = np.array(robot.home_qpos)
    full = ex.excitation_limits(robot, home)
    limits = ex.Limits(full.lower[index], full.upper[index], full.velocity[index], full.acceleration[index])
    experiment = ex.Experiment(duration_s=args.duration)
    checker = ex.CollisionChecker(arm, home)
    base_freq = 1.0 / args.duration
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            rng = np.random.default_rng(1000 + seed)
            hidden = hidden_parameters(rng, priors)
            for design in ("active", "random"):
                start = time.time()
                result = ex.design(arm, priors, joints, home, experiment, limits, n_harmonics=5,
                                   base_freq_hz=base_freq, population=args.population,
                                   generations=args.generations, seed=seed, active=design == "active",
                                   checker=checker)
                design_s = time.time() - start
                commands = ex.commands_for(result.trajectory, experiment, home, robot.arm_joints)
                recording = run_commands(robot, commands, experiment.command_hz, params=hidden, seed=seed)
                path = write_recording(Path(tmp) / f"{design}{seed}", recording)
                fit_seg, _ = F.split(read_recording(path, robot.arm_joints), 0.0)
                start = time.time()
                fitted = F.fit(arm, priors, [fit_seg], [], max_latency=2, max_iters=args.max_iters,
                               observed=joints, progress=lambda *_: None)
                errors = {p.name: abs(fitted.values[p.name] - hidden[p.name]) / p.scale for p in priors}
                row = {"seed": seed, "design": design, "criterion": round(result.criterion, 3),
                       "mean_error": float(np.mean(list(errors.values()))),
                       "max_error": float(np.max(list(errors.values()))),
                       "latency_ok": int(fitted.latency_steps == hidden["action_latency"]),
                       "design_s": round(design_s, 1), "fit_s": round(time.time() - start, 1)}
                row.update({f"err:{k}": round(v, 4) for k, v in errors.items()})
                rows.append(row)
                print(f"seed {seed} {design:>6}: logdet {row['criterion']:8.2f}  mean error {row['mean_error']:.4f}  "
                      f"max {row['max_error']:.4f}  latency {'ok' if row['latency_ok'] else 'WRONG'}  "
                      f"design {row['design_s']} s  fit {row['fit_s']} s", flush=True)
    print()
    print(f"{'design':>8} {'logdet':>9} {'mean err':>9} {'max err':>9} {'latency ok':>10}")
    for design in ("active", "random"):
        sel = [r for r in rows if r["design"] == design]
        print(f"{design:>8} {np.mean([r['criterion'] for r in sel]):9.2f} {np.mean([r['mean_error'] for r in sel]):9.4f} "
              f"{np.mean([r['max_error'] for r in sel]):9.4f} {sum(r['latency_ok'] for r in sel):>7}/{len(sel)}")
    wins = sum(a["mean_error"] <= r["mean_error"] for a, r in zip(rows[0::2], rows[1::2]))
    print(f"active <= random mean error on {wins}/{args.seeds} seeds")
    out = Path(args.csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".tmp"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out.with_suffix(".tmp").replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
