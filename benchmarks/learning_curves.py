"""Learning curves of TD-MPC2: evaluation return and success rate against environment steps on panda-reach,
panda-push and a DeepMind Control task, several seeds. Writes a CSV (one row per evaluation) and a PNG.

Runs on a CPU with the CPU preset (robot_rl/presets/cpu_small.yaml: small model, cheap planner); pass
`--preset ''` and larger `--steps` for the paper's settings on a GPU. The grid runs through `robot_rl.sweep` (one Ray
task per run, as many at once as `--cpus` allows; `--address` for a cluster); finished runs are skipped and killed
ones resume when the same command runs again.

    python benchmarks/learning_curves.py --tasks panda-reach,panda-push,dmc:cartpole-swingup \
        --seeds 1,2 --steps 3000 --eval-every 500 --out benchmarks/results/learning_curves
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")


def main() -> None:
    from robot_rl.overrides import load_yaml
    from robot_rl.sweep import check_grid, execute, make_run, results

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="panda-reach,panda-push,dmc:cartpole-swingup")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--steps", default="3000", help="one value, or one per task (comma separated)")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--eval-episodes", type=int, default=5)
    ap.add_argument("--preset", default=str(ROOT / "robot_rl/presets/cpu_small.yaml"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cpus", type=int, default=0, help="CPUs of the local Ray (0: all); one run per CPU")
    ap.add_argument("--address", default="", help="a Ray cluster (auto, host:port, ray://...) instead")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/learning_curves"))
    args = ap.parse_args()

    tasks = args.tasks.split(",")
    steps = [int(s) for s in args.steps.split(",")]
    steps = steps * len(tasks) if len(steps) == 1 else steps
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    preset = load_yaml(args.preset) if args.preset else {}
    runs = [make_run(task, "tdmpc2", seed, {"preset": preset, "benchmark": {
                "steps": n_steps, "eval_every": args.eval_every, "eval_episodes": args.eval_episodes,
                "threads": args.threads, "tensorboard": False, "checkpoint_every": args.eval_every}}, out)
            for task, n_steps in zip(tasks, steps) for seed in [int(s) for s in args.seeds.split(",")]]
    check_grid(runs)
    rows = [{"task": r["task"], "seed": r["seed"], "step": r["step"], "return": r["return"], "success": r["success"],
             "wall_min": round(r["train_s"] / 60, 2)}
            for r in results(execute(runs, address=args.address, local_cpus=args.cpus))]
    with (out / "learning_curves.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot(rows, tasks, out / "learning_curves.png")
    print(f"{'task':<24} {'seed':>4} {'step':>6} {'return':>9} {'success':>8}")
    for r in rows:
        print(f"{r['task']:<24} {r['seed']:>4} {r['step']:>6} {r['return']:>9.2f} {r['success']:>8.2f}")
    print(f"wrote {out / 'learning_curves.csv'} and {out / 'learning_curves.png'}")


def plot(rows: list[dict], tasks: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, len(tasks), figsize=(4 * len(tasks), 6), squeeze=False)
    for j, task in enumerate(tasks):
        for i, key in enumerate(("return", "success")):
            ax = axes[i][j]
            task_rows = [r for r in rows if r["task"] == task]
            seeds = sorted({r["seed"] for r in task_rows})
            for seed in seeds:
                pts = sorted((r["step"], r[key]) for r in task_rows if r["seed"] == seed)
                ax.plot(*zip(*pts), alpha=0.35, marker=".")
            steps = sorted({r["step"] for r in task_rows})
            mean = [np.mean([r[key] for r in task_rows if r["step"] == s]) for s in steps]
            ax.plot(steps, mean, color="black", linewidth=2, label=f"mean of {len(seeds)} seeds")
            ax.set_title(f"{task}: {key}")
            ax.set_xlabel("environment steps")
            ax.grid(alpha=0.3)
            if i == 0 and j == 0:
                ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
