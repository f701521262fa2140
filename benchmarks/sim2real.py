"""The sim-to-real gap, end to end: identify, retrain, evaluate on the "real" arm.

1. A "real" arm: sim/'s MuJoCo arm with a hidden parameters file (slower servos, heavier rotors, friction, a
   payload, action latency, joint-position noise), and the PyBullet arm (another engine: a structural gap).
2. Identify it: `robot-rl sysid excite` (active design in the nominal simulator, run on the hidden arm, recorded
   to rosbag2) and `robot-rl sysid fit` -> identified robot_params.yaml with confidence intervals.
3. Train TD-MPC2 (CPU preset) in the nominal simulator, in the identified one, and in the identified one with
   domain randomisation over the fitted intervals.
4. Evaluate each policy's success rate on the nominal simulator, the identified one (does it predict the real
   arm's success?), the hidden-parameter arm and the PyBullet arm.

The three trainings run through `robot_rl.sweep` (one Ray task each, `--cpus` of a local Ray or `--address` of a
cluster) with the train keys `params=` and `randomize=`; finished ones are skipped when the command runs again.
The evaluation targets (identified/hidden/PyBullet arms) are registered here as Gymnasium ids
(`robot_rl/panda-reach-<variant>-v0`) of sim.env.ArmEnv with `params=`, `backend=`.

    .venv/bin/python benchmarks/sim2real.py --steps 3000 --episodes 20
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")

HIDDEN = {"action_latency": 2, "obs_noise": 1e-3, "payload_mass": 1.0,
          **{f"kp/panda_joint{i}": v for i, v in zip(range(1, 8), (2200, 2200, 1700, 1700, 900, 900, 900))},
          **{f"armature/panda_joint{i}": 0.25 for i in range(1, 8)},
          **{f"frictionloss/panda_joint{i}": 0.5 for i in range(1, 8)}}


def write_params(path: Path, values: dict) -> Path:
    from sim.params import Parameter, RobotParams, save_params

    save_params(RobotParams("panda", {k: Parameter(float(v)) for k, v in values.items()}), path)
    return path


def register(task: str, variant: str, **kwargs) -> str:
    import gymnasium as gym

    import sim  # noqa: F401  (registers the base ids)

    name = f"panda-{task}-{variant}"
    if f"robot_rl/{name}-v0" not in gym.registry:
        gym.register(id=f"robot_rl/{name}-v0", entry_point="sim.env:ArmEnv",
                     kwargs={"task": task, "reward": "dense", **kwargs})
    return name


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="reach")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--excite-duration", type=float, default=10.0)
    ap.add_argument("--design-generations", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--trainings", default="nominal,identified,identified+dr")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/sim2real"))
    ap.add_argument("--cpus", type=int, default=0, help="CPUs of the local Ray (0: all); one training per CPU")
    ap.add_argument("--address", default="", help="a Ray cluster (auto, host:port, ray://...) instead")
    args = ap.parse_args()

    import torch

    from robot_rl.cli import main as cli
    from robot_rl.checkpoint import load_agent
    from robot_rl.evaluate import eval_pool, evaluate
    from robot_rl.overrides import load_yaml
    from robot_rl.sweep import check_grid, execute, make_run

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hidden = write_params(out / "hidden_params.yaml", HIDDEN)
    identified = out / "robot_params.yaml"

    t0 = time.time()
    if not identified.is_file():
        recording = out / "excitation_recording"
        if not recording.exists():
            assert cli(["sysid", "excite", f"out={out / 'excitation.yaml'}", f"real_params={hidden}",
                        f"recording={recording}", f"duration_s={args.excite_duration}",
                        f"generations={args.design_generations}", "population=8",
                        "kinds=armature,kp,frictionloss"]) == 0
        assert cli(["sysid", "fit", f"recording={recording}", f"out={identified}", "kinds=armature,kp,frictionloss",
                    "max_latency=3", "html_report=false"]) == 0
    identify_s = time.time() - t0

    from sim.params import load_params

    fitted = load_params(identified)
    print(f"{'parameter':<28}{'hidden':>10}{'fitted':>10}   95% interval")
    for name, true in HIDDEN.items():
        p = fitted.parameters[name]
        ci = f"[{p.ci[0]:.4g}, {p.ci[1]:.4g}]" if p.ci else ""
        print(f"{name:<28}{true:>10.4g}{p.value:>10.4g}   {ci}")

    variants = {"nominal": {}, "identified": {"params": str(identified)},
                "identified+dr": {"params": str(identified), "randomize": True}}
    targets = {"nominal sim": f"panda-{args.task}",
               "identified sim": register(args.task, "identified", params=str(identified)),  # predicts the real arm?
               "hidden arm": register(args.task, "hidden", params=str(hidden)),
               "pybullet arm": register(args.task, "pybullet", backend="pybullet")}
    preset = load_yaml(ROOT / "robot_rl/presets/cpu_small.yaml")
    trainings = args.trainings.split(",")
    runs = [make_run(f"panda-{args.task}", training.replace("+", "-"), args.seed, {
                "preset": preset, "benchmark": {"steps": args.steps, "eval_every": 0, "eval_episodes": 5,
                                                "threads": args.threads, "tensorboard": False,
                                                "checkpoint_every": max(1, args.steps // 4), **variants[training]}},
                out, labels={"steps": str(args.steps)}) for training in trainings]
    check_grid(runs)
    markers = execute(runs, address=args.address, local_cpus=args.cpus)
    rows = []
    for training, run, marker in zip(trainings, runs, markers):
        train_min = marker["train_s"] / 60
        agent, _, _ = load_agent(run.folder / "agent.pt", "cpu")
        for target, task in targets.items():
            pool = eval_pool(task, "state", 1, args.seed, args.episodes)
            result = evaluate(agent, pool, args.episodes, args.seed)
            pool.close()
            rows.append({"trained_in": training, "evaluated_on": target, "success": result["success"],
                         "return": round(result["return"], 2), "train_min": round(train_min, 1)})
            print(f"trained in {training:<14} evaluated on {target:<13} success {100 * result['success']:5.1f}%  "
                  f"return {result['return']:8.2f}", flush=True)
    print()
    print(f"identification: {identify_s:.0f} s; {args.steps} training steps per policy, {args.episodes} episodes")
    header = f"{'trained in':<16}" + "".join(f"{t:>15}" for t in targets)
    print(header)
    for training in args.trainings.split(","):
        cells = [next(r for r in rows if r["trained_in"] == training and r["evaluated_on"] == t) for t in targets]
        print(f"{training:<16}" + "".join(f"{100 * c['success']:>14.0f}%" for c in cells))
    with open(out / "sim2real.csv.tmp", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "sim2real.csv.tmp").replace(out / "sim2real.csv")
    print(f"wrote {out / 'sim2real.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
