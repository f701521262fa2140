"""MoDem benchmark: success rate against environment steps with 5 demos (MoDem) versus none (TD-MPC2) versus
behaviour cloning alone, on sparse-reward arm tasks, several seeds. Writes modem.csv (one row per evaluation),
modem.png (mean success vs steps, one panel per task/obs) and prints a table with the steps to 80 % success.

    python benchmarks/modem.py                                   # the small CPU version (minutes per run)
    python benchmarks/modem.py from_csv=a/modem.csv,b/modem.csv out=c   # plot + table of earlier runs only
    python benchmarks/modem.py tasks=panda-push-sparse,panda-pick-sparse obs=state,pixels seeds=5 \
        steps=100000 eval_every=5000 eval_episodes=20 model_size=5M samples=512 iterations=6   # the full one

The full version follows the paper's settings (5M model, 512 samples, 6 iterations); on one CPU core a
TD-MPC2 step costs 0.1-1 s, so it wants a GPU (`device=cuda`). The training runs go through `robot_rl.sweep` (one Ray
task each, `cpus=` of a local Ray or `address=` of a cluster; run folders out/runs/<task>-<method>-<obs>-s<seed>);
finished runs are skipped and killed ones resume when the same command runs again.
"""
from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

DEFAULTS = {"tasks": "panda-push-sparse,panda-pick-sparse", "obs": "state", "methods": "modem,tdmpc2,bc",
            "seeds": "2", "steps": "3000", "seed_steps": "400", "eval_every": "500", "eval_episodes": "5",
            "demos": "5", "bc_steps": "1000", "model_size": "1M", "mlp_dim": "128", "enc_dim": "128",
            "latent_dim": "64", "samples": "128", "iterations": "3", "elites": "16", "policy_samples": "8",
            "batch_size": "128", "render_size": "64", "device": "cpu", "threads": "1", "out": "runs/bench_modem",
            "from_csv": "", "cpus": "0", "address": ""}


def parse(argv: list[str]) -> dict[str, str]:
    args = dict(DEFAULTS)
    for a in argv:
        key, _, value = a.partition("=")
        if key not in args:
            raise SystemExit(f"unknown key {key!r}; keys: {sorted(args)}")
        args[key] = value
    return args


# Methods: the overrides each adds to the shared settings ("bc" is handled apart: no interaction).
METHODS = {
    "tdmpc2": {},                                                  # no demos
    "modem": {},                                                   # 5 demos, this repo's defaults (BC term on)
    "modem-nobc": {"modem.bc_coef": "0"},                          # MoDem as published
    "modem-v2": {"planner.center_std": "0.2", "planner.value_std_coef": "1.0"},  # + MoDem-V2 switches
}


def train_config(a: dict[str, str], task: str, obs: str, seed: int, demos: str, out: Path, method: str = "modem"):
    from robot_rl.overrides import build
    from robot_rl.train import Config

    pairs = {"task": task, "obs": obs, "seed": seed, "steps": a["steps"], "seed_steps": a["seed_steps"],
             "eval_every": a["eval_every"], "eval_episodes": a["eval_episodes"], "out": str(out),
             "model_size": a["model_size"], "mlp_dim": a["mlp_dim"], "enc_dim": a["enc_dim"],
             "latent_dim": a["latent_dim"], "batch_size": a["batch_size"], "planner.samples": a["samples"],
             "planner.iterations": a["iterations"], "planner.elites": a["elites"],
             "planner.policy_samples": a["policy_samples"], "device": a["device"], "threads": a["threads"],
             "progress": "false", "tensorboard": "false", "checkpoint_every": a["eval_every"], "demos": demos,
             "modem.bc_steps": a["bc_steps"], "frame_stack": "3" if obs != "state" else "1", **METHODS[method]}
    if method == "modem-v2":
        pairs["modem.handover_steps"] = str(int(a["steps"]) // 2)
    return build(Config, {k: str(v) for k, v in pairs.items()})


def bc_only(a: dict[str, str], task: str, obs: str, seed: int, demos: str) -> float:
    """Behaviour cloning alone: the pretrained policy prior acting by itself (no planner, no interaction)."""
    import dataclasses

    import torch

    from robot_rl.agent import TDMPC2
    from robot_rl.agent_config import agent_config_of
    from robot_rl.envs import make_env
    from robot_rl.evaluate import eval_pool, evaluate
    from robot_rl.modem import Modem

    cfg = train_config(a, task, obs, seed, demos, Path("/nonexistent"))
    agent_cfg = agent_config_of(cfg)
    agent_cfg = dataclasses.replace(agent_cfg, planner=dataclasses.replace(agent_cfg.planner, plan=False))
    env, info = make_env(task, obs, seed=seed + 1, frame_stack=cfg.frame_stack)
    env.close()
    torch.manual_seed(seed)
    agent = TDMPC2(agent_cfg, info.model_obs_spec, info.action_dim, info.episode_length, a["device"])
    Modem(cfg.modem, demos, agent, info, seed, 0).pretrain_policy()
    pool = eval_pool(task, obs, cfg.frame_stack, seed + 1, int(a["eval_episodes"]))
    result = evaluate(agent, pool, int(a["eval_episodes"]), seed)
    pool.close()
    return result["success"]


def steps_to(curve: list[tuple[int, float]], level: float = 0.8) -> int | None:
    return next((s for s, v in curve if v >= level), None)


def main(argv: list[str]) -> None:
    import torch

    from robot_rl.demo_dataset import DemoError, save_demos
    from robot_rl.demos import Config as DemosConfig, collect
    from robot_rl.overrides import to_dict
    from robot_rl.sweep import check_grid, execute, make_run, results

    a = parse(argv)
    torch.set_num_threads(int(a["threads"]))
    out = Path(a["out"])
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    if a["from_csv"]:  # only report: plot and table from earlier runs' CSVs (comma-separated paths)
        for path in a["from_csv"].split(","):
            with open(path) as f:
                rows += list(csv.DictReader(f))
        write_csv(out / "modem.csv", rows)
        plot(rows, out / "modem.png")
        print_table(rows)
        return
    runs, bc_rows = [], []
    for task in a["tasks"].split(","):
        for obs in a["obs"].split(","):
            demos = out / f"demos-{task}-{obs}"
            if not demos.exists():
                meta, eps = collect(DemosConfig(task=task, episodes=int(a["demos"]), seed=12345, progress=False,
                                                obs="state" if obs == "state" else "state+pixels",
                                                render_size=int(a["render_size"])))
                try:
                    save_demos(demos, meta, eps)
                except DemoError:
                    pass  # written by a parallel run meanwhile
            for method in a["methods"].split(","):
                if method not in (*METHODS, "bc"):
                    raise SystemExit(f"method {method!r}; expected one of {[*METHODS, 'bc']}")
                for seed in range(1, int(a["seeds"]) + 1):
                    if method == "bc":  # no interaction: evaluated here, not a training run
                        t0 = time.perf_counter()
                        success = bc_only(a, task, obs, seed, str(demos))
                        wall = round(time.perf_counter() - t0, 1)
                        bc_rows += [{"task": task, "obs": obs, "method": method, "seed": seed, "step": step,
                                     "success": success, "wall_s": wall} for step in (0, int(a["steps"]))]
                        continue
                    cfg = train_config(a, task, obs, seed, "" if method == "tdmpc2" else str(demos), out, method)
                    runs.append(make_run(task, method, seed, {"benchmark": to_dict(cfg)}, out, labels={"obs": obs}))
    check_grid(runs)
    rows = bc_rows + [{"task": r["task"], "obs": r["obs"], "method": r["method"], "seed": r["seed"],
                       "step": r["step"], "success": r["success"], "wall_s": round(r["train_s"], 1)}
                      for r in results(execute(runs, address=a["address"], local_cpus=int(a["cpus"])))]
    write_csv(out / "modem.csv", rows)
    plot(rows, out / "modem.png")
    print_table(rows)


def write_csv(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def mean_curves(rows: list[dict]) -> dict[tuple[str, str, str], list[tuple[int, float]]]:
    curves: dict[tuple[str, str, str], dict[int, list[float]]] = {}
    for r in rows:
        curves.setdefault((r["task"], r["obs"], r["method"]), {}).setdefault(int(r["step"]), []).append(
            float(r["success"]))
    return {k: sorted((s, float(np.mean(v))) for s, v in c.items()) for k, c in curves.items()}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = mean_curves(rows)
    panels = sorted({(t, o) for t, o, _ in curves})
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, (task, obs) in zip(axes[0], panels):
        for (t, o, method), curve in sorted(curves.items()):
            if (t, o) == (task, obs):
                ax.plot(*zip(*curve), marker="o", label=method, linestyle="--" if method == "bc" else "-")
        ax.axhline(0.8, color="gray", lw=0.5)
        ax.set(title=f"{task} ({obs})", xlabel="environment steps", ylabel="success rate", ylim=(-0.05, 1.05))
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def print_table(rows: list[dict]) -> None:
    curves = mean_curves(rows)
    seeds = {}
    for r in rows:
        seeds.setdefault((r["task"], r["obs"], r["method"]), set()).add(r["seed"])
    print("\n| task | obs | method | seeds | final success | best success | steps to 80% |")
    print("|---|---|---|---|---|---|---|")
    for key, curve in sorted(curves.items()):
        hit = steps_to(curve)
        print(f"| {key[0]} | {key[1]} | {key[2]} | {len(seeds[key])} | {curve[-1][1]:.2f} | "
              f"{max(v for _, v in curve):.2f} | {hit if hit is not None else f'> {curve[-1][0]}'} |")


if __name__ == "__main__":
    main(sys.argv[1:])
