"""Observation-to-command latency of the deployed stack: `robot-rl deploy` (sim_robot_node + policy_node as
processes over DDS on loopback) at 50 Hz and 100 Hz, with the policy prior and with the MPPI planner.

    python benchmarks/deploy_latency.py bundle=bundles/reach [seconds=20] [rates=50,100] [modes=policy,planner]

Per setting, from policy_node's own diagnostics after `seconds` of control:
  compute     joint state in hand -> command published (observation assembly, ONNX, safety filter, publish)
  obs->cmd    stamp of the joint state used -> command published (adds the DDS hop from the arm and the wait for
              the next control tick; the simulated arm publishes joint states at 250 Hz)
  missed      deadlines missed (periods the timer skipped, or compute longer than a period) out of all periods
Writes benchmarks/results/deploy_latency.csv and prints a table.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str]) -> int:
    from hardware.deploy import Config, deploy
    from hardware.transport.dds import private_domain_id

    args = dict(a.split("=", 1) for a in argv)
    if "bundle" not in args:
        print(__doc__)
        return 2
    seconds = float(args.get("seconds", 20))
    rates = [float(r) for r in args.get("rates", "50,100").split(",")]
    modes = args.get("modes", "policy,planner").split(",")
    rows = []
    for mode in modes:
        for rate in rates:
            summary = deploy(Config(bundle=args["bundle"], mode=mode, control_rate_hz=rate, duration_s=seconds,
                                    domain_id=private_domain_id(), local_only=True),   # one machine: loopback
                            log=lambda *_: None)
            d = summary["policy"]
            rows.append({"mode": mode, "rate_hz": rate, "periods": d["ticks"],
                         "compute_ms_p50": d["compute_ms_p50"], "compute_ms_p99": d["compute_ms_p99"],
                         "obs_to_cmd_ms_p50": d["obs_age_ms_p50"], "obs_to_cmd_ms_p99": d["obs_age_ms_p99"],
                         "missed": d["missed_deadlines"], "missed_pct": 100.0 * d["missed_deadlines"] / max(1, d["ticks"]),
                         "status": d["status"]})
            print(f"{mode} at {rate:g} Hz done", file=sys.stderr)
    out = ROOT / "benchmarks/results/deploy_latency.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out)
    print(f"{'mode':<8} {'Hz':>5} {'periods':>7} {'compute p50/p99 ms':>19} {'obs->cmd p50/p99 ms':>20} "
          f"{'missed':>12}")
    for r in rows:
        print(f"{r['mode']:<8} {r['rate_hz']:>5g} {r['periods']:>7} "
              f"{r['compute_ms_p50']:>9.2f}/{r['compute_ms_p99']:<9.2f} "
              f"{r['obs_to_cmd_ms_p50']:>10.2f}/{r['obs_to_cmd_ms_p99']:<9.2f} "
              f"{r['missed']:>5} ({r['missed_pct']:.1f}%)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
