"""Per-call latency of the exported policy and MPPI planner on one CPU thread: onnxruntime
(intra_op_num_threads=1) against the PyTorch planner (torch.set_num_threads(1)) in the same run, for the 1M and
5M presets and several planner settings (samples x iterations x horizon). Prints a table, writes a CSV, and says
which settings fit a 20 ms (50 Hz) control period.

    python benchmarks/inference_latency.py [--presets 1M,5M] [--calls 200] [--max-seconds 4]

Models are randomly initialised (latency does not depend on the weights) for panda-reach's state observation
(24 numbers) and action (8). Timing covers one batch-1 call with its inputs ready (noise drawn beforehand).
"""
from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

from robot_rl.agent_config import AgentConfig, PlannerConfig
from robot_rl.export import onnx_bytes
from robot_rl.onnx_graphs import PlannerGraph, PolicyGraph
from robot_rl.planner import plan, sample_noise
from robot_rl.world_model import WorldModel

STATE_DIM, ACTION_DIM = 24, 8
BUDGET_MS = 20.0
# name -> (samples, iterations, horizon, policy_samples, elites); None: the policy prior alone
SETTINGS: dict[str, tuple[int, int, int, int, int] | None] = {
    "paper 512x6x3": (512, 6, 3, 24, 64),
    "256x4x3": (256, 4, 3, 12, 32),
    "128x2x3": (128, 2, 3, 8, 16),
    "96x2x3": (96, 2, 3, 6, 12),
    "64x3x3": (64, 3, 3, 4, 8),
    "64x2x3": (64, 2, 3, 4, 8),
    "32x2x3": (32, 2, 3, 4, 4),
    "policy only": None,
}


def timed(fn, calls: int, max_seconds: float) -> np.ndarray:
    for _ in range(3):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < calls and time.perf_counter() - start < max_seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return np.asarray(times) * 1e3


def session(data: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def measure(preset: str, name: str, setting, calls: int, max_seconds: float) -> dict:
    torch.manual_seed(0)
    cfg = AgentConfig(model_size=preset)
    model = WorldModel(cfg, {"state": (STATE_DIM,)}, ACTION_DIM).eval()
    obs = torch.randn(1, STATE_DIM)
    if setting is None:
        graph, names, args = PolicyGraph(model), ["state"], (obs,)
        outputs = ["action"]

        def run_torch():
            with torch.inference_mode():
                graph(obs)
    else:
        s, i, h, p, k = setting
        pcfg = PlannerConfig(samples=s, iterations=i, horizon=h, policy_samples=p, elites=k)
        graph = PlannerGraph(model, pcfg, 0.99)
        names = ["state", "prev_plan", "is_first", "noise", "policy_noise", "select_noise"]
        args = (obs, torch.zeros(1, h, ACTION_DIM), torch.tensor([False]), *sample_noise(pcfg, 1, ACTION_DIM))
        outputs = ["action", "next_plan"]

        def run_torch():
            with torch.inference_mode():
                plan(model, {"state": obs}, args[1], args[2], *args[3:], pcfg, 0.99)
    sess = session(onnx_bytes(graph, args, names, outputs, 17))
    feeds = {n: a.numpy() for n, a in zip(names, args)}
    ort_ms = timed(lambda: sess.run(None, feeds), calls, max_seconds)
    torch_ms = timed(run_torch, calls, max_seconds)
    row = {"preset": preset, "setting": name, "onnx_p50_ms": np.percentile(ort_ms, 50),
           "onnx_p99_ms": np.percentile(ort_ms, 99), "torch_p50_ms": np.percentile(torch_ms, 50),
           "torch_p99_ms": np.percentile(torch_ms, 99), "calls": min(len(ort_ms), len(torch_ms))}
    row["torch/onnx"] = row["torch_p50_ms"] / row["onnx_p50_ms"]
    row["fits_50Hz"] = bool(row["onnx_p99_ms"] < BUDGET_MS)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="1M,5M")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated of {list(SETTINGS)}")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--csv", default="benchmarks/results/inference_latency.csv")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    header = f"{'preset':<6} {'setting':<15} {'onnx p50':>9} {'onnx p99':>9} {'torch p50':>10} {'torch p99':>10} " \
             f"{'torch/onnx':>10} {'calls':>6}  50 Hz (onnx p99 < 20 ms)"
    print(header)
    for preset in args.presets.split(","):
        for name in args.settings.split(","):
            row = measure(preset, name, SETTINGS[name], args.calls, args.max_seconds)
            rows.append(row)
            print(f"{preset:<6} {name:<15} {row['onnx_p50_ms']:9.2f} {row['onnx_p99_ms']:9.2f} "
                  f"{row['torch_p50_ms']:10.2f} {row['torch_p99_ms']:10.2f} {row['torch/onnx']:10.2f} "
                  f"{row['calls']:6d}  {'yes' if row['fits_50Hz'] else 'no'}", flush=True)
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path} (times in ms per call, one CPU thread)")


if __name__ == "__main__":
    main()
