"""Training throughput of the TD-MPC2 agent per model preset: planning time per action (MPPI, paper settings
512 samples x 6 iterations x horizon 3, and a real-time setting), policy-only acting time, gradient updates per
second (batch 256, horizon 3), the panda-reach environment step, and the resulting environment steps per
second of training (one update per step, planning to act).

    python benchmarks/train_throughput.py [--sizes 1M,5M,19M] [--threads 1] [--device cpu] [--csv out.csv]
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from robot_rl.agent import TDMPC2  # noqa: E402
from robot_rl.agent_config import AgentConfig, PlannerConfig  # noqa: E402
from robot_rl.envs import make_env  # noqa: E402
from robot_rl.replay_buffer import ReplayBuffer  # noqa: E402


def timed(fn, repeats: int, warmup: int = 2, sync=lambda: None) -> float:
    for _ in range(warmup):
        fn()
    sync()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - t) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1M,5M,19M")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--csv", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    env, info = make_env("panda-reach")
    env.reset(seed=0)
    action = np.zeros(info.action_dim, np.float32)

    def env_step():
        _, _, term, trunc, _ = env.step(action)
        if term or trunc:
            env.reset()
    env_ms = 1e3 * timed(env_step, 200)

    obs_dim, a_dim = info.obs_spec["state"][0][0], info.action_dim
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(10_000, info.obs_spec, a_dim, horizon=3)
    for _ in range(20):
        buf.start_episode({"state": rng.normal(size=obs_dim).astype(np.float32)})
        for _ in range(40):
            buf.add({"state": rng.normal(size=obs_dim).astype(np.float32)}, rng.uniform(-1, 1, a_dim), -1.0)
    obs = {"state": np.zeros(obs_dim, np.float32)}
    realtime = PlannerConfig(samples=128, policy_samples=8, elites=16, iterations=3, horizon=3)

    rows = []
    for size in args.sizes.split(","):
        torch.manual_seed(0)
        agent = TDMPC2(AgentConfig(model_size=size), info.model_obs_spec, a_dim, info.episode_length, device)
        params = sum(p.numel() for n, p in agent.model.named_parameters() if not n.startswith("target_"))
        plan_ms = 1e3 * timed(lambda: agent.act(obs, False), args.repeats, sync=sync)
        agent.cfg.planner = realtime
        agent.prev_mean = torch.zeros(1, realtime.horizon, a_dim, device=device)
        rt_ms = 1e3 * timed(lambda: agent.act(obs, False), args.repeats * 2, sync=sync)
        agent.cfg.planner = PlannerConfig(plan=False)
        pi_ms = 1e3 * timed(lambda: agent.act(obs, False), 50, sync=sync)
        update_ms = 1e3 * timed(lambda: agent.update(buf.sample(256, device)), args.repeats, sync=sync)
        rows.append({"preset": size, "params_M": params / 1e6, "plan_ms": plan_ms, "plan_realtime_ms": rt_ms,
                     "policy_ms": pi_ms, "updates_per_s": 1e3 / update_ms, "env_step_ms": env_ms,
                     "train_steps_per_s": 1e3 / (env_ms + plan_ms + update_ms),
                     "train_steps_per_s_realtime_plan": 1e3 / (env_ms + rt_ms + update_ms)})
        del agent

    print(f"device {device}, {args.threads} thread(s); plan = 512 samples x 6 iters x horizon 3 (paper); "
          f"realtime plan = 128 x 3 x 3")
    head = ["preset", "params_M", "plan_ms", "plan_realtime_ms", "policy_ms", "updates_per_s", "env_step_ms",
            "train_steps_per_s", "train_steps_per_s_realtime_plan"]
    print(" | ".join(f"{h:>12}" for h in head))
    for r in rows:
        print(" | ".join(f"{r[h]:>12.2f}" if isinstance(r[h], float) else f"{r[h]:>12}" for h in head))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=head)
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
