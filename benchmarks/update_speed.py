"""Milliseconds per TD-MPC2 gradient update and per planning call (one observation, MPPI), per model preset,
on synthetic data (no simulator), so the agent's own compute is measured alone.

Times are the calling thread's CPU time (time.thread_time, median over repeats): with torch on 1 thread all
compute runs on that thread, and on a shared, loaded machine CPU time does not count the waits for a core that
wall-clock time does (cache and memory-bandwidth contention still show). With more threads it times wall-clock.

    python benchmarks/update_speed.py [--presets cpu_small,1M,5M] [--threads 1] [--repeats 20] [--compile]
    python benchmarks/update_speed.py --compare /path/to/other/checkout   # side by side, interleaved

`--compare` runs the same measurement from another checkout of the repository (e.g. `git worktree add
/tmp/base HEAD~5`) in alternating rounds, each tree in its own subprocess, so load on a shared machine hits
both alike; it prints each tree's median and the ratio.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# cpu_small is robot_rl/presets/cpu_small.yaml's agent part; 1M and 5M are the paper's presets at its settings
PRESETS: dict[str, dict] = {
    "cpu_small": dict(model_size="1M", enc_dim=128, mlp_dim=128, latent_dim=64, batch_size=128,
                      planner=dict(samples=128, elites=16, policy_samples=8, iterations=3)),
    "1M": dict(model_size="1M"),
    "5M": dict(model_size="5M"),
}


def measure(preset: str, threads: int, repeats: int, compile: bool, obs_dim: int, action_dim: int,
            root: Path = ROOT) -> dict:
    """Median ms of `update` and of `act` (planner) for one preset, in this process, with the code of `root`."""
    sys.path.insert(0, str(root))
    import numpy as np
    import torch

    from robot_rl.agent import TDMPC2
    from robot_rl.agent_config import AgentConfig, PlannerConfig
    from robot_rl.replay_buffer import ReplayBuffer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    spec = dict(PRESETS[preset])
    cfg = AgentConfig(**{**spec, "planner": PlannerConfig(**spec.get("planner", {}))})
    agent = TDMPC2(cfg, {"state": (obs_dim,)}, action_dim, episode_length=100, compile=compile)
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(20_000, {"state": ((obs_dim,), "float32")}, action_dim, horizon=cfg.horizon)
    for _ in range(20):
        buf.start_episode({"state": rng.normal(size=obs_dim).astype(np.float32)})
        for _ in range(100):
            buf.add({"state": rng.normal(size=obs_dim).astype(np.float32)},
                    rng.uniform(-1, 1, action_dim).astype(np.float32), float(rng.normal()))
    batches = [buf.sample(cfg.batch_size) for _ in range(4)]
    obs = {"state": rng.normal(size=obs_dim).astype(np.float32)}

    clock = time.thread_time if threads == 1 else time.perf_counter

    def timed(fn, n: int) -> float:
        times = []
        for i in range(n):
            t = clock()
            fn(i)
            times.append(clock() - t)
        return 1e3 * statistics.median(times)

    timed(lambda i: agent.update(batches[i % 4]), 5)  # warm-up (and compilation)
    timed(lambda i: agent.act(obs, first=i == 0), 3)
    update_ms = timed(lambda i: agent.update(batches[i % 4]), repeats)
    plan_ms = timed(lambda i: agent.act(obs, first=i == 0), repeats)
    return {"preset": preset, "update_ms": update_ms, "plan_ms": plan_ms}


def run_tree(root: Path, args, preset: str) -> dict:
    cmd = [sys.executable, __file__, "--json", "--root", str(root), "--presets", preset,
           "--threads", str(args.threads), "--repeats", str(args.repeats),
           "--obs-dim", str(args.obs_dim), "--action-dim", str(args.action_dim)]
    cmd += ["--compile"] if args.compile else []
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="cpu_small,1M,5M")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--obs-dim", type=int, default=39)
    ap.add_argument("--action-dim", type=int, default=8)
    ap.add_argument("--compile", action="store_true", help="TDMPC2(compile=True): torch.compile the losses")
    ap.add_argument("--compare", default="", help="another checkout: measure both, interleaved")
    ap.add_argument("--rounds", type=int, default=3, help="with --compare: alternating rounds per preset")
    ap.add_argument("--json", action="store_true", help="print one JSON line (used by --compare)")
    ap.add_argument("--root", default=str(ROOT), help="the checkout whose robot_rl is measured")
    args = ap.parse_args()
    presets = args.presets.split(",")
    unknown = set(presets) - set(PRESETS)
    if unknown:
        raise SystemExit(f"--presets: unknown {sorted(unknown)}; expected some of {list(PRESETS)}")
    if not args.compare:
        rows = [measure(p, args.threads, args.repeats, args.compile, args.obs_dim, args.action_dim, Path(args.root))
                for p in presets]
        if args.json:
            print(json.dumps(rows))
            return
        print(f"threads={args.threads} obs_dim={args.obs_dim} action_dim={args.action_dim} compile={args.compile}")
        print(f"{'preset':>10} {'update ms':>10} {'plan ms':>9}")
        for r in rows:
            print(f"{r['preset']:>10} {r['update_ms']:10.1f} {r['plan_ms']:9.1f}")
        return
    other = Path(args.compare).resolve()
    print(f"this={ROOT} other={other} threads={args.threads} rounds={args.rounds} repeats={args.repeats}")
    print(f"{'preset':>10} {'update this':>12} {'other':>8} {'ratio':>6} {'plan this':>10} {'other':>8} {'ratio':>6}")
    for p in presets:
        mine, theirs = [], []
        for _ in range(args.rounds):
            mine.append(run_tree(ROOT, args, p))
            theirs.append(run_tree(other, args, p))
        u = [statistics.median(r["update_ms"] for r in rows) for rows in (mine, theirs)]
        pl = [statistics.median(r["plan_ms"] for r in rows) for rows in (mine, theirs)]
        print(f"{p:>10} {u[0]:12.1f} {u[1]:8.1f} {u[0] / u[1]:6.2f} {pl[0]:10.1f} {pl[1]:8.1f} {pl[0] / pl[1]:6.2f}")


if __name__ == "__main__":
    main()
