"""Identification on arms it was not tuned on: per parameter kind the median and 90th-percentile relative error,
95 % interval coverage, held-out joint RMSE prior -> fitted, latency hit rate; active against random excitation
at equal length.

Each seed draws a hidden arm (calibration.hidden_arms: every joint its own damping, armature, friction loss,
kp factor; one payload, latency, noise). Two excitations are made in the nominal simulator, as a user would
before knowing the robot: the active design (D_s-optimal on kp/armature/payload by default, --criterion) and
design=random, equally long and within the same limits (joint, velocity, table, servo force range). Each is played
on the hidden arm (run_on=sim: calibration.simulated_arm; run_on=dds: over DDS on sim_robot_node, as stamped
one-point trajectories unless --command-topic says otherwise, with the recorder writing an MCAP bag, as `robot-rl
sysid excite run_on=dds` does), fitted, and checked on one separate held-out recording of the same arm (another
random trajectory). criterion_truth is the design's criterion on the hidden arm's own values.

    .venv/bin/python benchmarks/sysid_heldout.py --arms 10 --duration 5 --iters 12 --population 4 --generations 2
    .venv/bin/python benchmarks/sysid_heldout.py --arms 3 ... --run-on dds --out benchmarks/results/sysid_heldout_dds.csv

Relative error = |fitted - true| / true. "identifiable" rows count only the parameters the fit's report calls
determined (interval narrower than 10 % of the prior's box).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = ("damping", "armature", "frictionloss", "kp", "payload_mass")


def record(robot, commands, args, hidden_file: Path, seed: int, folder: Path, name: str):
    """A JointRecording of `commands` played on the hidden arm."""
    from calibration.recording_io import read_recording, write_recording
    from calibration.simulated_arm import run_commands

    if args.run_on == "sim":
        rec = run_commands(robot, commands, args.command_hz, params=str(hidden_file), state_hz=args.state_hz,
                           seed=seed)
        write_recording(folder / name, rec)        # through a real bag, as the CLI does
    else:
        from calibration.dds_excitation import DdsRun, run_excitation
        from hardware.transport.dds import private_domain_id

        run = DdsRun(arm="sim", sim_params=str(hidden_file), domain_id=private_domain_id(), ramp_velocity=0.6,
                     command_topic=args.command_topic, log=lambda *_: None)
        run_excitation(run, robot, commands, args.command_hz, args.state_hz, folder / name)
    return read_recording(folder / name, robot.arm_joints)


def one_arm(seed: int, args, robot, arm_model, joints, folder: Path) -> list[dict]:
    from calibration import excitation, hidden_arms
    from calibration.excite import Config as ExciteConfig, _subset_limits
    from calibration.fit import Segment, fit

    hidden = hidden_arms.draw(seed, robot)
    hidden_file = hidden_arms.write(folder / f"hidden{seed}.yaml", hidden, robot.name)
    priors = arm_model.default_priors(joints)
    interest = excitation.interest_mask(priors, tuple(args.interest.split(",")))
    q_rest = np.asarray(robot.home_qpos, float)
    experiment = excitation.Experiment(command_hz=args.command_hz, state_hz=args.state_hz, duration_s=args.duration,
                                      use_velocity=args.use_velocity)
    limits = _subset_limits(robot, joints, q_rest, ExciteConfig())
    checker = excitation.CollisionChecker(arm_model, q_rest)
    common = dict(n_harmonics=args.harmonics, base_freq_hz=1.0 / args.duration * args.periods, checker=checker)
    held_design = excitation.design(arm_model, priors, joints, q_rest, experiment, limits, seed=10_000 + seed,
                                    active=False, **common)
    held = record(robot, excitation.commands_for(held_design.trajectory, experiment, q_rest, robot.arm_joints),
                  args, hidden_file, 20_000 + seed, folder, f"held{seed}")
    rows = []
    for kind in ("active", "random"):
        t = time.time()
        result = excitation.design(arm_model, priors, joints, q_rest, experiment, limits, seed=seed,
                                   active=kind == "active", population=args.population,
                                   generations=args.generations, kind=args.criterion, interest=interest, **common)
        design_s = time.time() - t
        # The design's criterion where it was made (the nominal simulator) and on the hidden arm itself.
        at_truth = [dataclasses.replace(p, nominal=hidden.values[p.name]) for p in priors]
        truth_fim = excitation.fisher_information(arm_model, at_truth, [result.trajectory], experiment, q_rest)
        criterion_truth = float(excitation.criterion(truth_fim, args.criterion, interest)[0])
        rec = record(robot, excitation.commands_for(result.trajectory, experiment, q_rest, robot.arm_joints),
                     args, hidden_file, seed, folder, f"{kind}{seed}")
        r = fit(arm_model, priors, [Segment("fit", rec, 0, len(rec.state_stamps))],
                [Segment("holdout", held, 0, len(held.state_stamps))], max_latency=3, max_iters=args.iters,
                use_velocity=args.use_velocity, observed=joints, progress=lambda *_: None)
        true_latency = int(hidden.values["action_latency"])
        row = {"seed": seed, "design": kind, "criterion": result.criterion, "criterion_start": result.random_criterion,
               "criterion_truth": criterion_truth, "converged": not any("stopped at max_iters" in w for w in r.warnings),
               "design_s": round(design_s, 1),
               "fit_s": round(r.seconds, 1), "latency_true": true_latency, "latency_fit": r.latency_steps,
               "offset_ms": round(r.offset_s * 1e3, 2), "holdout_prior": r.holdout_rmse["prior"],
               "holdout_fitted": r.holdout_rmse["fitted"], "noise": hidden.values["obs_noise"],
               "inflation": r.interval_inflation}
        for p in priors:
            truth, value, half = hidden.values[p.name], r.values[p.name], r.half_widths[p.name]
            row[f"{p.name}:rel_err"] = abs(value - truth) / truth
            row[f"{p.name}:covered"] = bool(abs(value - truth) <= half)
            row[f"{p.name}:identifiable"] = r.identifiable[p.name]
        rows.append(row)
        print(f"  seed {seed} {kind:6s}: latency {r.latency_steps}/{true_latency}, held-out RMSE "
              f"{r.holdout_rmse['prior'] * 1e3:.2f} -> {r.holdout_rmse['fitted'] * 1e3:.2f} mrad (noise "
              f"{hidden.values['obs_noise'] * 1e3:.2f}), covered "
              f"{sum(row[f'{p.name}:covered'] for p in priors)}/{len(priors)}, design {design_s:.0f} s, fit "
              f"{r.seconds:.0f} s", flush=True)
    return rows


def summarise(rows: list[dict]) -> list[str]:
    lines = [f"{'design':<8}{'kind':<14}{'median':>8}{'p90':>8}{'med(id.)':>10}{'n id.':>7}{'coverage':>10}"]
    medians = {}
    for design in ("active", "random"):
        sub = [r for r in rows if r["design"] == design]
        for kind in KINDS:
            keys = sorted({k.split(":")[0] for r in sub for k in r if k.startswith(kind) and k.endswith(":rel_err")})
            errs = np.array([r[f"{k}:rel_err"] for r in sub for k in keys])
            ident = np.array([r[f"{k}:identifiable"] for r in sub for k in keys])
            cover = np.array([r[f"{k}:covered"] for r in sub for k in keys])
            if not errs.size:
                continue
            med_id = float(np.median(errs[ident])) if ident.any() else float("nan")
            medians[(design, kind)] = float(np.median(errs))
            lines.append(f"{design:<8}{kind:<14}{np.median(errs):>8.1%}{np.percentile(errs, 90):>8.1%}"
                         f"{med_id:>10.1%}{int(ident.sum()):>4}/{len(ident):<3}{cover.mean():>9.0%}")
        all_cover = np.mean([v for r in sub for k, v in r.items() if k.endswith(":covered")])
        prior = np.array([r["holdout_prior"] for r in sub])
        fitted = np.array([r["holdout_fitted"] for r in sub])
        noise = np.array([r["noise"] for r in sub])
        hits = np.mean([r["latency_fit"] == r["latency_true"] for r in sub])
        lines.append(f"{design:<8}all parameters: coverage {all_cover:.0%}; held-out RMSE prior -> fitted median "
                     f"{np.median(prior) * 1e3:.2f} -> {np.median(fitted) * 1e3:.2f} mrad (noise median "
                     f"{np.median(noise) * 1e3:.2f}); worse than prior on {int(np.sum(fitted >= prior))}/{len(sub)} "
                     f"arms; latency hit rate {hits:.0%}; interval inflation (HAC / white) median "
                     f"{np.median([r['inflation'] for r in sub]):.1f}x")
    active = {r["seed"]: r for r in rows if r["design"] == "active"}
    pairs = [(active[r["seed"]], r) for r in rows if r["design"] == "random" and r["seed"] in active]
    if pairs and "criterion_truth" in pairs[0][0]:
        lines.append(f"design criterion: active above its best start on "
                     f"{sum(a['criterion'] > a['criterion_start'] for a, _ in pairs)}/{len(pairs)} arms; active above "
                     f"random on the hidden arm itself on {sum(a['criterion_truth'] > r['criterion_truth'] for a, r in pairs)}"
                     f"/{len(pairs)} (median difference {np.median([a['criterion_truth'] - r['criterion_truth'] for a, r in pairs]):.2f}"
                     f"); fits converged {sum(bool(x['converged']) for x in rows)}/{len(rows)}")
    ratios = [medians[("random", k)] / medians[("active", k)] for k in KINDS
              if ("random", k) in medians and medians[("active", k)] > 0]
    if ratios:
        lines.append("random / active median error: " + ", ".join(
            f"{k} {medians[('random', k)] / medians[('active', k)]:.2f}x" for k in KINDS if ("active", k) in medians))
    return lines


def write_csv(out: Path, rows: list[dict]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    tmp_out = out.with_name(f".{out.name}.tmp")
    with open(tmp_out, "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(rows)
    tmp_out.replace(out)


def read_csv(path: Path) -> list[dict]:
    def value(text: str):
        if text in ("True", "False"):
            return text == "True"
        try:
            return float(text)
        except ValueError:
            return text

    with open(path, newline="") as f:
        rows = [{k: value(v) for k, v in row.items()} for row in csv.DictReader(f)]
    seeds = {r["seed"] for r in rows if r["design"] == "random"}   # whole arms only: both designs fitted
    return [r for r in rows if r["seed"] in seeds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--joints", default="panda_joint2,panda_joint4")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--periods", type=float, default=2.0, help="base periods of the Fourier series in it")
    parser.add_argument("--harmonics", type=int, default=4)
    parser.add_argument("--command-hz", type=float, default=20.0)
    parser.add_argument("--state-hz", type=float, default=100.0)
    parser.add_argument("--population", type=int, default=6)
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--use-velocity", action="store_true")
    parser.add_argument("--criterion", choices=("ds", "logdet", "min_eig"), default="ds")
    parser.add_argument("--interest", default="kp,armature,payload_mass", help="criterion=ds: parameter kinds")
    parser.add_argument("--run-on", choices=("sim", "dds"), default="sim")
    parser.add_argument("--command-topic", default="/joint_trajectory_controller/joint_trajectory",
                        help="run_on=dds: stamped one-point trajectories (or /forward_position_controller/commands)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "sysid_heldout.csv"))
    parser.add_argument("--summarise", metavar="CSV", help="print the table of an earlier (or stopped) run's CSV")
    args = parser.parse_args()
    if args.summarise:
        print("\n".join(summarise(read_csv(Path(args.summarise)))))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import logging

    logging.getLogger("absl").setLevel(logging.ERROR)
    from calibration.arm_model import ArmModel
    from sim.robot import load_robot

    robot = load_robot("panda")
    arm_model = ArmModel(robot)
    joints = tuple(args.joints.split(","))
    rows: list[dict] = []
    start = time.time()
    print(f"{args.arms} arms, joints {joints}, {args.duration:g} s excitations at {args.command_hz:g} Hz commands / "
          f"{args.state_hz:g} Hz states, run_on={args.run_on}, use_velocity={args.use_velocity}, design "
          f"{args.criterion} (interest {args.interest}) population {args.population} x {args.generations} "
          f"generations, fit max_iters {args.iters}", flush=True)
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.arms):
            rows += one_arm(seed, args, robot, arm_model, joints, Path(tmp))
            write_csv(out, rows)             # after every arm: a stopped run keeps what it measured
    print(f"\n{len(rows) // 2} arms in {time.time() - start:.0f} s; {out}")
    print("\n".join(summarise(rows)))


if __name__ == "__main__":
    main()
