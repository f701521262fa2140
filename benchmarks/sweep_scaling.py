"""Sweep scaling on this machine: a 3-seed x 2-task grid of tiny training runs run one after another (as the
benchmarks used to) against `robot-rl sweep` on a local Ray; the per-run overhead of a sweep on a local multi-node
Ray cluster (`ray start` head + a worker node, both on this machine); and the environment steps/s a learner gets
from 0 (its own collector, in turn with its updates), 1, 2 or 4 remote collector actors, with its idle share.

    .venv/bin/python benchmarks/sweep_scaling.py --steps 80 --collector-steps 160 --out runs/sweep_scaling

Prints a table per part and writes out/sweep_scaling.csv. Both wall clocks are whole commands in fresh processes
(Python start, imports, Ray start-up included). The runs are tiny (robot_rl/presets/cpu_small.yaml, a few hundred
environment steps), so start-up costs weigh far more than they would against a 5-minute run.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")
PY = sys.executable
RAY = str(Path(sys.executable).with_name("ray"))
ROBOT_RL = str(Path(sys.executable).with_name("robot-rl"))


def train_keys(steps: int) -> dict:
    from robot_rl.overrides import load_yaml

    return {**load_yaml(ROOT / "robot_rl/presets/cpu_small.yaml"), "steps": steps, "seed_steps": steps // 2,
            "eval_every": 0, "eval_episodes": 1, "checkpoint_every": steps, "threads": 1, "tensorboard": False,
            "progress": False}


def spec(tasks: list[str], seeds: list[int], steps: int, out: Path, **keys) -> Path:
    import yaml

    path = out.with_suffix(".yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"tasks": tasks, "seeds": seeds, "out": str(out), "progress": False,
                                    "train": train_keys(steps), **keys}))
    return path


def timed(cmd: list[str], log: Path, env: dict | None = None) -> float:
    started = time.perf_counter()
    with log.open("w") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    return time.perf_counter() - started


SEQUENTIAL = """
import sys, time, json
from robot_rl.overrides import build
from robot_rl.train import Config, train
keys, out = json.loads(sys.argv[1]), sys.argv[2]
for task in sys.argv[3].split(","):
    for seed in map(int, sys.argv[4].split(",")):
        train(build(Config, keys, {"task": task, "seed": seed, "out": f"{out}/{task}-s{seed}"}))
"""


def train_seconds(out: Path) -> list[float]:
    return [json.loads(p.read_text())["train_s"] for p in sorted(out.glob("runs/*/done.json"))]


class LocalCluster:
    """`ray start --head` and `ray start --address` (a second node) on this machine, in their own temp folder;
    stopped by the ids of the processes that name that folder (never `ray stop`, which ends every Ray here)."""

    # Loopback only, so without Ray's token authentication (a worker node started with `ray start --address`
    # did not find the head's token here); the sweep and the probes connect with the same setting.
    ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}

    def __init__(self, cpus_per_node: int = 1):
        self.temp = tempfile.mkdtemp(prefix="sweep_scaling_ray_")
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        base = [RAY, "start", f"--num-cpus={cpus_per_node}", f"--temp-dir={self.temp}", "--disable-usage-stats",
                "--node-ip-address=127.0.0.1"]
        self.address = f"127.0.0.1:{port}"
        try:
            subprocess.run([*base, "--head", f"--port={port}", "--include-dashboard=false"], check=True,
                           capture_output=True, env=self.ENV)
            subprocess.run([*base, f"--address={self.address}"], check=True, capture_output=True, env=self.ENV)
        except subprocess.CalledProcessError as err:
            self.stop()
            raise RuntimeError(f"ray start failed: {err.stderr.decode()[-2000:]}") from None

    def pids(self) -> list[int]:
        out = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout.splitlines()
        rows = [line.split(None, 2) for line in out if line.strip()]
        own = {int(r[0]) for r in rows if len(r) == 3 and self.temp in r[2]}
        return sorted(own | {int(r[0]) for r in rows if int(r[1]) in own})  # + workers the raylets started

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(3)


def grid_part(args, out: Path) -> list[dict]:
    tasks, seeds = args.tasks.split(","), [int(s) for s in args.seeds.split(",")]
    n = len(tasks) * len(seeds)
    sequential = timed([PY, "-c", SEQUENTIAL, json.dumps(train_keys(args.steps)), str(out / "sequential"),
                        ",".join(tasks), ",".join(map(str, seeds))], out / "sequential.log")
    local = timed([ROBOT_RL, "sweep", f"spec={spec(tasks, seeds, args.steps, out / 'sweep_local')}",
                   f"local_cpus={args.cpus}"], out / "sweep_local.log")
    cluster = LocalCluster(cpus_per_node=max(1, args.cpus // 2))
    try:
        multi = timed([ROBOT_RL, "sweep", f"spec={spec(tasks, seeds, args.steps, out / 'sweep_cluster')}",
                       f"address={cluster.address}"], out / "sweep_cluster.log", cluster.ENV)
        noop = noop_latency(cluster.address)
    finally:
        cluster.stop()
    rows = []
    for name, wall, folder in (("sequential (one process)", sequential, None),
                               (f"robot-rl sweep, local Ray, {args.cpus} CPUs", local, out / "sweep_local"),
                               ("robot-rl sweep, 2-node cluster (1 CPU each)", multi, out / "sweep_cluster")):
        row = {"part": "grid", "setting": name, "runs": n, "wall_s": round(wall, 1),
               "vs_sequential": round(wall / sequential, 2)}
        if folder is not None:
            inside = train_seconds(folder)
            # Slot time not spent inside train(): Ray start-up, worker start and imports, scheduling, aggregation.
            overhead = (wall * args.cpus - sum(inside)) / n
            row.update({"train_s_per_run": round(sum(inside) / n, 1), "overhead_s_per_run": round(overhead, 1),
                        "overhead_of_5min_run_pct": round(100 * overhead / 300, 1)})
        rows.append(row)
    rows.append({"part": "grid", "setting": "no-op Ray task round trip on the cluster", "runs": noop["tasks"],
                 "wall_s": round(noop["wall_s"], 2), "overhead_s_per_run": round(noop["per_task_s"], 4),
                 "overhead_of_5min_run_pct": round(100 * noop["per_task_s"] / 300, 4)})
    return rows


NOOP = """
import json, sys, time
import ray
ray.init(address=sys.argv[1])
f = ray.remote(num_cpus=1)(lambda: None)
ray.get([f.remote() for _ in range(4)])  # workers started
t = time.perf_counter()
for _ in range(int(sys.argv[2])):
    ray.get(f.remote())
print(json.dumps({"tasks": int(sys.argv[2]), "wall_s": time.perf_counter() - t}))
"""


def noop_latency(address: str, tasks: int = 50) -> dict:
    out = subprocess.run([PY, "-c", NOOP, address, str(tasks)], check=True, capture_output=True, text=True,
                         env=LocalCluster.ENV).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "per_task_s": result["wall_s"] / tasks}


def collector_part(args) -> list[dict]:
    import ray
    import torch

    from robot_rl.agent import TDMPC2
    from robot_rl.agent_config import agent_config_of
    from robot_rl.envs import make_env
    from robot_rl.overrides import build, to_dict
    from robot_rl.replay_buffer import ReplayBuffer
    from robot_rl.train import Config
    from robot_rl.training.learner import Learner
    from robot_rl.training.remote import CollectorWorker, RemoteCollectors, learn_remote
    from robot_rl.training.samplers import UniformSampler
    from robot_rl.training.transitions import Transitions

    torch.set_num_threads(1)
    config = build(Config, train_keys(args.steps), {"task": args.tasks.split(",")[0], "seed": 1})
    _, info = make_env(config.task, seed=1)

    def learner() -> Learner:
        torch.manual_seed(1)
        agent = TDMPC2(agent_config_of(config), info.model_obs_spec, info.action_dim, info.episode_length, "cpu")
        buffer = ReplayBuffer(100_000, info.obs_spec, info.action_dim, config.horizon, seed=1)
        return Learner(agent, buffer, UniformSampler(buffer, torch.device("cpu")))

    rows = []
    steps, rate = args.collector_steps, args.updates_per_step
    # 0 remote actors: the learner's own collector, in turn with its updates (what `robot-rl train` does).
    own, lrn = CollectorWorker(to_dict(config), info.as_dict(), 0, 1), learner()
    started, collecting, received, credit, broadcast_at = time.perf_counter(), 0.0, 0, 0.0, 0
    while received < steps:
        t = time.perf_counter()
        blob, taken, _, _ = own.collect(info.episode_length)
        collecting += time.perf_counter() - t
        lrn.ingest(Transitions.from_bytes(blob))
        received += taken
        credit += taken * rate
        lrn.update(int(credit), received)
        credit -= int(credit)
        if lrn.updates - broadcast_at >= args.broadcast_every:
            own.set_weights(lrn.weights(), lrn.updates)
            broadcast_at = lrn.updates
    wall = time.perf_counter() - started
    rows.append({"part": "collectors", "setting": "0 remote (own collector)", "actors": 0,
                 "env_steps": received, "wall_s": round(wall, 1), "env_steps_per_s": round(received / wall, 1),
                 "updates": lrn.updates, "learner_idle_pct": round(100 * collecting / wall, 1)})
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False)
    try:
        for actors in (1, 2, 4):
            collectors = RemoteCollectors(config, info, actors=actors, envs=1, cpus=args.cpus / 4)
            try:
                collectors.next()  # actors built and stepping before the clock starts
                stats = learn_remote(learner(), collectors, steps, rate, args.broadcast_every)
            finally:
                collectors.close()
            rows.append({"part": "collectors", "setting": f"{actors} remote actor(s) x 1 env", "actors": actors,
                         "env_steps": stats["env_steps"], "wall_s": round(stats["wall_s"], 1),
                         "env_steps_per_s": round(stats["env_steps_per_s"], 1), "updates": stats["updates"],
                         "learner_idle_pct": round(100 * stats["learner_idle"], 1)})
    finally:
        ray.shutdown()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="panda-reach,panda-push")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--steps", type=int, default=120, help="environment steps per grid run")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs the sweep's local Ray and the cluster get")
    ap.add_argument("--collector-steps", type=int, default=400, help="environment steps per collector setting")
    ap.add_argument("--updates-per-step", type=float, default=0.5)
    ap.add_argument("--broadcast-every", type=int, default=20, help="learner updates between weight broadcasts")
    ap.add_argument("--parts", default="grid,collectors")
    ap.add_argument("--out", default=str(ROOT / "runs/sweep_scaling"))
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    rows = []
    if "grid" in args.parts:
        rows += grid_part(args, out)
    if "collectors" in args.parts:
        rows += collector_part(args)
    print(f"\n{os.cpu_count()} cores, load average {load:.1f} at the start (shared machine), {args.steps} steps/run")
    for part in ("grid", "collectors"):
        part_rows = [r for r in rows if r["part"] == part]
        if part_rows:
            keys = [k for k in dict.fromkeys(k for r in part_rows for k in r) if k != "part"]
            print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
            for r in part_rows:
                print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
    fields = list(dict.fromkeys(k for r in rows for k in r))
    tmp = out / "sweep_scaling.csv.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out / "sweep_scaling.csv")
    print(f"\nwrote {out / 'sweep_scaling.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
