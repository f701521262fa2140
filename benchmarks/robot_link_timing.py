"""Real-time behaviour of hardware/robot_link.py: episodes of random actions at the task's control rate against
sim_robot_node in its own process (as a robot's driver would be), over DDS on loopback.

    .venv/bin/python benchmarks/robot_link_timing.py [--task panda-reach] [--seconds 45] [--pause-ms 5]
                                                     [--episode-steps 40] [--csv out.csv]

`--pause-ms` is the actor's own work between steps (policy inference, bookkeeping), spent sleeping. Reports
missed deadlines (steps called after their period ended), step jitter (observation time - period boundary),
the period between step returns, resets and their duration, faults and commands outside the joint limits.
The interface (PolicyIO, safety limits, control rate) comes from the same functions a bundle's does.
"""
import argparse
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cyclonedds.domain import Domain  # noqa: E402

from hardware.bundle import robot_interface  # noqa: E402
from hardware.robot_link import RobotLinkConfig, open_link  # noqa: E402
from hardware.transport.dds import local_only_config, private_domain_id  # noqa: E402
from robot_rl.envs import make_env  # noqa: E402
from robot_rl.export import robot_interface as interface_dict  # noqa: E402


def percentile_ms(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q)) if len(values) else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="panda-reach")
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--pause-ms", type=float, default=5.0)
    parser.add_argument("--episode-steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()

    env, info = make_env(args.task, "state")
    home = env.unwrapped.start_qpos.copy()
    sim_task = env.unwrapped.task_name
    env.close()
    io, limits, control_hz = robot_interface(interface_dict(info), f"task {args.task}")

    domain = private_domain_id()
    handle = Domain(domain, local_only_config())
    proc_env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "CYCLONEDDS_URI": local_only_config(),
                "ROBOT_RL_TRANSPORT": "dds", "PYTHONPATH": str(ROOT)}
    sim = subprocess.Popen([sys.executable, "-m", "hardware.nodes.sim_robot_node", f"task:={sim_task}",
                            f"task_rate_hz:={control_hz}"], env=proc_env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    rng = np.random.default_rng(args.seed)
    periods, steps = [], 0
    try:
        with open_link(io, limits, control_hz, home, RobotLinkConfig(connect_timeout_s=30.0),
                       domain_id=domain, node_name="robot_link_timing") as link:
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                link.reset()
                last = None
                for _ in range(args.episode_steps):
                    time.sleep(args.pause_ms * 1e-3)
                    out = link.step(rng.uniform(-1, 1, io.actions.dim))
                    now = time.monotonic()
                    if last is not None and not out.late:
                        periods.append(now - last)
                    last = now
                    steps += 1
                    if out.fault is not None or out.operator is not None:
                        break
            stats = link.stats()
    finally:
        sim.send_signal(signal.SIGINT)
        try:
            sim.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            sim.kill()
        del handle

    row = {"task": args.task, "control_hz": control_hz, "seconds": args.seconds, "pause_ms": args.pause_ms,
           "steps": stats["steps"], "missed_deadlines": stats["missed_deadlines"],
           "jitter_ms_p50": round(stats["step_jitter_ms_p50"], 2), "jitter_ms_p99": round(stats["step_jitter_ms_p99"], 2),
           "jitter_ms_max": round(stats["step_jitter_ms_max"], 2),
           "period_ms_p50": round(percentile_ms(periods, 50), 2), "period_ms_p99": round(percentile_ms(periods, 99), 2),
           "period_ms_max": round(max(periods) * 1e3, 2) if periods else float("nan"),
           "resets": stats["resets"], "reset_s_mean": round(float(np.mean(stats["reset_s"])), 3),
           "reset_s_max": round(float(np.max(stats["reset_s"])), 3), "faults": sum(stats["faults"].values()),
           "fault_kinds": " ".join(f"{k}={v}" for k, v in sorted(stats["faults"].items())),
           "commands_outside_limits": stats["commands_outside_limits"]}
    width = max(len(k) for k in row)
    for key, value in row.items():
        print(f"{key:<{width}}  {value}")
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.csv.with_suffix(args.csv.suffix + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            writer.writeheader()
            writer.writerow(row)
        tmp.replace(args.csv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
