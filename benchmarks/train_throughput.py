"""Training-engine throughput and what N and updates_per_step do to learning.

Throughput (`--mode throughput`): for each preset x N environments x threads x task, a real training run's
collector and learner (robot_rl/training/) are timed part by part after a short seeding phase: one batched
acting + environment step for N environments, and one gradient update. Environment steps per second of
training at `updates_per_step` u follow as N / (t_collect + N u t_update); the table gives u = 1 and u = 1/N.

    python benchmarks/train_throughput.py --presets cpu,1M,5M --envs 1,4,16,64 --threads 1,2 \
        --tasks panda-reach,panda-push,dmc:cartpole-swingup

CPU milliseconds (process time) beside wall-clock ones say what the work costs when other jobs share the cores
(with threads=1 they are the single-core cost). Presets: cpu = robot_rl/presets/cpu.yaml (the CPU default); 1M / 5M = the paper's model with its planner
(512 samples x 6 iterations x horizon 3) and batch 256. Runs one configuration at a time (2 cores: parallel
timings distort each other).

Learning (`--mode learning`): panda-reach trained with each `--settings` N:u pair over `--seeds`, the runs
interleaved seed by seed so load hits every setting alike; success against environment steps AND wall-clock
seconds (eval.csv's elapsed_s), and the first evaluation at >= 80 % success.

    python benchmarks/train_throughput.py --mode learning --settings 1:1,4:0.5,16:0.25 --seeds 1,2,3 --steps 6000
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")

PAPER = {"batch_size": 256, "planner": {"samples": 512, "iterations": 6, "horizon": 3, "policy_samples": 24,
                                        "elites": 64}}


def preset_layer(name: str) -> dict:
    from robot_rl.overrides import load_yaml

    if name == "cpu":
        return load_yaml(ROOT / "robot_rl/presets/cpu.yaml")
    return {"preset": "paper", "model_size": name, **PAPER}


def build_run(preset: str, task: str, envs: int, threads: int, out: Path):
    import torch

    from robot_rl.agent import pick_device
    from robot_rl.envs import make_env
    from robot_rl.overrides import build
    from robot_rl.train import Config, env_kwargs
    from robot_rl.training.run import TrainingRun

    torch.set_num_threads(threads)
    config = build(Config, preset_layer(preset), {"task": task, "envs": envs, "threads": threads, "out": str(out),
                                                  "eval_episodes": 1, "progress": False, "tensorboard": False})
    _, info = make_env(config.task, config.obs, seed=config.seed, **env_kwargs(config))
    return TrainingRun(config, info, pick_device("cpu")), config


def measure(preset: str, task: str, envs: int, threads: int, vector_steps: int, updates: int) -> dict:
    import statistics

    with tempfile.TemporaryDirectory() as tmp:
        run, config = build_run(preset, task, envs, threads, Path(tmp))
        try:
            # seed the buffer with whole episodes (random actions), then act with the agent
            random_steps = 0
            while len(run.buffer) < 4 * run.info.episode_length or run.learner.pending:
                t, _, n = run.collector.step(0)
                run.learner.ingest(t)
                random_steps += n
            acting_step = run.seed_steps  # past seeding: the schedule hands over to the agent's acting
            collect, collect_cpu = [], []
            for _ in range(vector_steps):
                t0, c0 = time.perf_counter(), time.process_time()
                t, _, n = run.collector.step(acting_step)
                run.learner.ingest(t)
                collect.append(time.perf_counter() - t0)
                collect_cpu.append(time.process_time() - c0)
            run.learner.update(2, acting_step)  # warm-up
            update, update_cpu = [], []
            for _ in range(updates):
                t0, c0 = time.perf_counter(), time.process_time()
                run.learner.update(1, acting_step)
                update.append(time.perf_counter() - t0)
                update_cpu.append(time.process_time() - c0)
        finally:
            run.close()
    t_collect, t_update = statistics.median(collect), statistics.median(update)
    c_collect, c_update = statistics.median(collect_cpu), statistics.median(update_cpu)
    return {"preset": preset, "task": task, "envs": envs, "threads": threads,
            "collect_ms": 1e3 * t_collect, "update_ms": 1e3 * t_update,
            "collect_cpu_ms": 1e3 * c_collect, "update_cpu_ms": 1e3 * c_update,
            "train_steps_per_s_u1": envs / (t_collect + envs * t_update),
            "train_steps_per_s_u1_over_n": envs / (t_collect + t_update),
            "cpu_steps_per_s_u1": envs / (c_collect + envs * c_update),
            "cpu_steps_per_s_u1_over_n": envs / (c_collect + c_update)}


def throughput(args) -> None:
    rows = []
    for preset in args.presets.split(","):
        for task in args.tasks.split(","):
            for threads in map(int, args.threads.split(",")):
                for envs in map(int, args.envs.split(",")):
                    if preset != "cpu" and envs > args.max_paper_envs:
                        continue  # a paper-size plan for 64 environments takes minutes per call on a CPU
                    row = measure(preset, task, envs, threads, args.vector_steps, args.updates)
                    rows.append(row)
                    print(" | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()),
                          flush=True)
    print_table(rows)
    write_csv(args.csv, rows)


def learning(args) -> None:
    from robot_rl.cli import main

    settings = [tuple(s.split(":")) for s in args.settings.split(",")]
    out = Path(args.out)
    rows = []
    for seed in args.seeds.split(","):
        for envs, rate in settings:  # interleaved: each seed runs every setting before the next seed
            folder = out / f"n{envs}-u{rate}-s{seed}"
            code = main(["train", f"task={args.task}", f"envs={envs}", f"updates_per_step={rate}", f"seed={seed}",
                         f"steps={args.steps}", f"eval_every={args.eval_every}", "checkpoint_every=0",
                         f"threads={args.learn_threads}", "progress=false", "tensorboard=false",
                         f"out={folder}", *args.extra])
            if code != 0:
                raise SystemExit(f"run {folder} failed ({code})")
            with (folder / "eval.csv").open() as f:
                for r in csv.DictReader(f):
                    rows.append({"envs": int(envs), "updates_per_step": float(rate), "seed": int(seed),
                                 "step": int(r["step"]), "elapsed_s": float(r["elapsed_s"]),
                                 "success": float(r["success"])})
    write_csv(args.csv, rows)
    print(f"\n{args.task}: first evaluation at >= 80 % success (median over seeds; '-' = never)")
    print(f"{'envs':>5} {'upd/step':>9} {'seeds reaching':>15} {'steps':>8} {'seconds':>9} {'final success':>14}")
    import statistics

    for envs, rate in settings:
        mine = [r for r in rows if r["envs"] == int(envs) and r["updates_per_step"] == float(rate)]
        hits, finals = [], []
        for seed in args.seeds.split(","):
            runs = sorted((r for r in mine if r["seed"] == int(seed)), key=lambda r: r["step"])
            hit = next((r for r in runs if r["success"] >= 0.8), None)
            if hit:
                hits.append(hit)
            finals.append(runs[-1]["success"])
        steps = f"{statistics.median(h['step'] for h in hits):.0f}" if hits else "-"
        secs = f"{statistics.median(h['elapsed_s'] for h in hits):.0f}" if hits else "-"
        print(f"{envs:>5} {rate:>9} {len(hits):>9}/{len(finals):<5} {steps:>8} {secs:>9} "
              f"{statistics.mean(finals):>14.2f}")


def print_table(rows: list[dict]) -> None:
    if not rows:
        return
    head = list(rows[0])
    print("\n| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(f"{r[h]:.1f}" if isinstance(r[h], float) else str(r[h]) for h in head) + " |")


def write_csv(path: str, rows: list[dict]) -> None:
    if path and rows:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("throughput", "learning"), default="throughput")
    ap.add_argument("--presets", default="cpu,1M,5M")
    ap.add_argument("--tasks", default="panda-reach,panda-push,dmc:cartpole-swingup")
    ap.add_argument("--envs", default="1,4,16,64")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--max-paper-envs", type=int, default=16)
    ap.add_argument("--vector-steps", type=int, default=8)
    ap.add_argument("--updates", type=int, default=8)
    ap.add_argument("--task", default="panda-reach")
    ap.add_argument("--settings", default="1:1,4:0.5,16:0.25")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--learn-threads", type=int, default=1)
    ap.add_argument("--out", default="runs/bench-learning")
    ap.add_argument("--csv", default="")
    ap.add_argument("extra", nargs="*", help="more train key=value pairs for --mode learning")
    args = ap.parse_args()
    throughput(args) if args.mode == "throughput" else learning(args)


if __name__ == "__main__":
    main()
