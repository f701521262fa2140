"""Soak of the deployed stack under faults: sim_robot_node + policy_node over DDS on loopback, faults on a schedule.

    python benchmarks/deploy_soak.py bundle=bundles/reach [duration_s=1800] [fault_every_s=20] [episode_s=5] [logs=DIR]

The simulated arm (sim_robot_node's logic, in this process so that its joint states can be stalled) and a
monitor run here; policy_node runs as its own process with launch/config/policy.yaml. Every `fault_every_s` the
next fault of the cycle is injected:
  kill        SIGKILL the policy node, restart it 2 s later
  stall       /joint_states stop for 1 s
  flood       another process writes 800 kB JointState samples (over the 64 KiB bound) at 20/s for 3 s
  loss        the policy node restarted with 20 % of its outgoing DDS packets dropped for 8 s, then restarted
              without: transport-level loss (Cyclone DDS Internal/Test/XmitLossiness) on the command path
              (commands, diagnostics, its acknowledgements), because netem is not available here (`ip netns`
              works, but `tc qdisc add ... netem` fails inside it: no sch_netem in this kernel). Joint states
              (best effort, the arm's side) are not made lossy: the arm runs in this process.
Reported (table + benchmarks/results/deploy_soak.csv, one row per fault):
  commands outside limits   received commands outside the bundle's position limits, or moving more than
                            v_max * P * k from the previous one, k = received gap in periods (rounded, >= 1;
                            from receive times, so acceleration is not checked here)
  time to hold              stall: status of the policy becomes hold_* (its status_since_ns) - fault start,
                            goal <= one period + safety.observation_timeout_s; kill: last command received -
                            kill (the controller then keeps the last target)
  recovered / recovery_s    the policy back to ok/limited after the fault ends, and how long it took
  missed                    missed deadlines reported by the policy node(s) during the fault's window
"""
from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NORMAL = ("ok", "limited", "workspace")
LOSS_PER_MILLE = 200
FLOOD = """
import os, sys, time
from cyclonedds._clayer import ddspy_write
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.topic import Topic
from hardware import messages as m
from hardware.transport.base import QOS_SENSOR_DATA
from hardware.transport.dds import dds_qos
participant = DomainParticipant(int(os.environ["ROS_DOMAIN_ID"]))
writer = DataWriter(participant, Topic(participant, "rt/joint_states", m.JointState), qos=dds_qos(QOS_SENSOR_DATA))
data = m.JointState(name=["j"] * 50_000, position=[0.0] * 50_000).serialize()   # ~800 kB, serialised once
start, sent = time.monotonic(), 0
while time.monotonic() < start + float(sys.argv[1]):
    ddspy_write(writer._ref, data)
    sent += 1
    time.sleep(max(0.0, start + sent / float(sys.argv[2]) - time.monotonic()))
"""


class Soak:
    def __init__(self, bundle: str, domain: int, run_dir: Path):
        from cyclonedds.domain import Domain

        from hardware import messages as m
        from hardware.nodes.sim_robot_node import SimRobot
        from hardware.policy_runtime import open_bundle
        from hardware.transport.base import load_params_file
        from hardware.transport.dds import DdsExecutor, DdsNode, local_only_config, spin_in_thread

        # The simulated arm logs every period it falls behind real time; on a loaded machine that is every period.
        logging.getLogger("robot_rl.sim_robot").setLevel(logging.ERROR)

        self.m, self.bundle, self.domain, self.run_dir = m, bundle, domain, run_dir
        self.config = local_only_config()
        self._domain = Domain(domain, self.config)
        loaded = open_bundle(bundle, "policy", 0)
        self.limits, self.period = loaded.safety, 1.0 / loaded.control_hz
        self.timeout = load_params_file(ROOT / "launch/config/policy.yaml", "policy")["safety.observation_timeout_s"]
        sim_params = load_params_file(ROOT / "launch/config/sim_robot.yaml", "sim_robot")
        self.sim_node = DdsNode("sim_robot", domain_id=domain, parameters=sim_params)
        self.sim = SimRobot(self.sim_node)
        self.monitor = DdsNode("soak_monitor", domain_id=domain)
        self.commands: list[tuple[float, np.ndarray]] = []
        self.diagnostics: list[tuple[float, dict]] = []
        self.monitor.create_subscription(m.Float64MultiArray, "/forward_position_controller/commands",
                                         lambda msg: self.commands.append((time.monotonic(), np.array(msg.data))))
        self.monitor.create_subscription(m.String, "/policy/diagnostics",
                                         lambda msg: self.diagnostics.append((time.monotonic(), json.loads(msg.data))))
        self.reset = self.monitor.create_publisher(m.Float64MultiArray, "/sim_robot/reset")
        self.executor = DdsExecutor([self.sim_node, self.monitor])
        self.thread = spin_in_thread(self.executor)
        self.policy: subprocess.Popen | None = None
        self.starts = 0

    def env(self, lossy: bool = False) -> dict:
        config = self.config
        if lossy:
            config = config.replace("</Domain>", f"<Internal><Test><XmitLossiness>{LOSS_PER_MILLE}</XmitLossiness>"
                                                 "</Test></Internal></Domain>")
        return {**os.environ, "ROS_DOMAIN_ID": str(self.domain), "CYCLONEDDS_URI": config,
                "ROBOT_RL_TRANSPORT": "dds", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

    def start_policy(self, lossy: bool = False) -> None:
        self.starts += 1
        log = (self.run_dir / f"policy_{self.starts}.log").open("w")
        self.policy = subprocess.Popen(
            [sys.executable, "-m", "hardware.nodes.policy_node", "--ros-args", "--params-file",
             str(ROOT / "launch/config/policy.yaml"), "-p", f"bundle:={Path(self.bundle).resolve()}",
             "-p", f"diagnostics_period_s:={self.period}"], env=self.env(lossy), stdout=log, stderr=subprocess.STDOUT)

    def stop_policy(self, sig=signal.SIGINT) -> None:
        if self.policy is not None and self.policy.poll() is None:
            self.policy.send_signal(sig)
            try:
                self.policy.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.policy.kill()
                self.policy.wait()

    def status_after(self, t: float) -> dict | None:
        return next((d for tr, d in reversed(self.diagnostics) if tr >= t), None)

    def wait_normal(self, since: float, timeout: float) -> float | None:
        """Seconds from `since` until the policy reports ok/limited, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for tr, d in self.diagnostics:
                if tr >= since and d["status"] in NORMAL:
                    return tr - since
            time.sleep(0.02)
        return None

    def missed_between(self, t0: float, t1: float) -> int:
        """Missed deadlines the policy reported in [t0, t1] (summed over restarts: counters restart at 0)."""
        window = [d for tr, d in self.diagnostics if t0 <= tr <= t1]
        total, last = 0, None
        for d in window:
            if last is not None:
                total += d["missed_deadlines"] - last if d["missed_deadlines"] >= last else d["missed_deadlines"]
            last = d["missed_deadlines"]
        return total

    # ------------------------------------------------------------ faults
    def kill(self) -> dict:
        t0 = time.monotonic()
        self.stop_policy(signal.SIGKILL)
        time.sleep(2.0)
        last = max((t for t, _ in self.commands if t <= t0 + 2.0), default=t0)
        arm_speed = float(np.max(np.abs(self.sim.physics.arm_qvel())))
        restart = time.monotonic()
        self.start_policy()
        recovery = self.wait_normal(restart, 60.0)
        return {"time_to_hold_s": max(0.0, last - t0), "arm_speed_after_2s": arm_speed, "recovered": recovery is not None,
                "recovery_s": recovery, "end": restart}

    def stall(self) -> dict:
        t0_wall, t0 = time.time_ns(), time.monotonic()
        self.sim.publish_joint_states = False
        time.sleep(1.0)
        self.sim.publish_joint_states = True
        resumed = time.monotonic()
        held = [d for tr, d in self.diagnostics if tr >= t0 and d["status"].startswith("hold_")
                and d["status_since_ns"] is not None and d["status_since_ns"] >= t0_wall]
        hold = (held[0]["status_since_ns"] - t0_wall) * 1e-9 if held else None
        recovery = self.wait_normal(resumed, 30.0)
        return {"time_to_hold_s": hold, "recovered": recovery is not None, "recovery_s": recovery, "end": resumed}

    def flood(self) -> dict:
        before = self.status_after(time.monotonic() - 0.2) or {}
        flooder = subprocess.Popen([sys.executable, "-c", FLOOD, "3.0", "20"], env=self.env(), cwd=ROOT)
        flooder.wait(timeout=60)
        end = time.monotonic()
        after = self.status_after(end - 0.2) or {}
        dropped = after.get("dropped_samples", {}).get("/joint_states", {}).get("oversized", 0) - \
            before.get("dropped_samples", {}).get("/joint_states", {}).get("oversized", 0)
        recovery = self.wait_normal(end, 30.0)
        return {"time_to_hold_s": None, "dropped": dropped, "recovered": recovery is not None,
                "recovery_s": recovery, "end": end}

    def loss(self) -> dict:
        self.stop_policy()
        self.start_policy(lossy=True)
        up = self.wait_normal(time.monotonic(), 60.0)
        t0 = time.monotonic()
        time.sleep(8.0)
        received = sum(1 for t, _ in self.commands if t >= t0)
        statuses = [d["status"] for tr, d in self.diagnostics if tr >= t0]
        self.stop_policy()
        restart = time.monotonic()
        self.start_policy()
        recovery = self.wait_normal(restart, 60.0)
        return {"time_to_hold_s": None, "recovered": up is not None and recovery is not None, "recovery_s": recovery,
                "end": restart, "received_pct": 100.0 * received / (8.0 / self.period),
                "held_pct": 100.0 * sum(s.startswith("hold_") for s in statuses) / max(1, len(statuses))}

    # ------------------------------------------------------------ checks
    def outside_limits(self) -> tuple[int, int]:
        lim = self.limits
        outside, previous = 0, None
        for t, q in self.commands:
            bad = q.shape != lim.lower.shape or not np.all(np.isfinite(q)) or \
                np.any(q < lim.lower - 1e-9) or np.any(q > lim.upper + 1e-9)
            if not bad and previous is not None:
                periods = max(1, round((t - previous[0]) / self.period))
                bad = bool(np.any(np.abs(q - previous[1]) > lim.velocity * self.period * periods + 1e-9))
            outside += bool(bad)
            previous = (t, q)
        return outside, len(self.commands)

    def close(self) -> None:
        self.stop_policy()
        self.executor.shutdown()
        self.thread.join(5)
        self.sim.close()


def main(argv: list[str]) -> int:
    from hardware.transport.dds import private_domain_id

    args = dict(a.split("=", 1) for a in argv)
    if "bundle" not in args:
        print(__doc__)
        return 2
    duration, every, episode_s = (float(args.get(k, d)) for k, d in
                                  (("duration_s", 1800), ("fault_every_s", 20), ("episode_s", 5)))
    run_dir = Path(args.get("logs") or tempfile.mkdtemp(prefix="deploy_soak_"))   # one log per policy process
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"policy node logs in {run_dir}", file=sys.stderr)
    soak = Soak(args["bundle"], private_domain_id(), run_dir)
    faults = {"kill": soak.kill, "stall": soak.stall, "flood": soak.flood, "loss": soak.loss}
    rows = []
    try:
        soak.start_policy()
        assert soak.wait_normal(time.monotonic() - 1, 120.0) is not None, "the policy did not come up"
        start = time.monotonic()
        next_fault, next_goal, cycle = start + every, start, 0
        while time.monotonic() - start < duration:
            now = time.monotonic()
            if now >= next_goal:
                soak.reset.publish(soak.m.float64_multi_array([]))   # a new goal: keep the arm moving
                next_goal += episode_s
            if now >= next_fault:
                name = list(faults)[cycle % len(faults)]
                cycle += 1
                t0 = time.monotonic()
                row = {"t_s": round(t0 - start, 1), "fault": name, **faults[name]()}
                row["missed"] = soak.missed_between(t0, row.pop("end") + (row["recovery_s"] or 0.0))
                rows.append(row)
                print(f"[{row['t_s']:7.1f} s] {name}: {row}", file=sys.stderr)
                next_fault = max(next_fault + every, time.monotonic() + 2.0)
            time.sleep(0.05)
        elapsed = time.monotonic() - start
    finally:
        soak.close()
    outside, received = soak.outside_limits()
    fields = ["t_s", "fault", "time_to_hold_s", "recovered", "recovery_s", "missed", "dropped", "arm_speed_after_2s",
              "received_pct", "held_pct"]
    out = ROOT / "benchmarks/results/deploy_soak.csv"
    tmp = out.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out)
    goal = soak.period + soak.timeout
    print(f"soak: {elapsed:.0f} s at {1 / soak.period:g} Hz, {len(rows)} faults, {received} commands received, "
          f"{outside} outside limits (goal 0)")
    print(f"{'fault':<6} {'n':>3} {'time to hold s (max)':>21} {'goal':>6} {'recovered':>9} {'recovery s (max)':>17} "
          f"{'missed':>7}")
    for name in faults:
        rs = [r for r in rows if r["fault"] == name]
        if not rs:
            continue
        holds = [r["time_to_hold_s"] for r in rs if r["time_to_hold_s"] is not None]
        recs = [r["recovery_s"] for r in rs if r["recovery_s"] is not None]
        print(f"{name:<6} {len(rs):>3} {max(holds) if holds else float('nan'):>21.3f} "
              f"{goal if name == 'stall' else float('nan'):>6.3f} {sum(r['recovered'] for r in rs):>5}/{len(rs):<3} "
              f"{max(recs) if recs else float('nan'):>17.2f} {sum(r['missed'] for r in rs):>7}")
    ticks = missed = 0
    previous = None
    for _, d in soak.diagnostics:   # counters restart with each policy process
        if previous is not None and d["ticks"] < previous["ticks"]:
            ticks, missed = ticks + previous["ticks"], missed + previous["missed_deadlines"]
        previous = d
    if previous is not None:
        ticks, missed = ticks + previous["ticks"], missed + previous["missed_deadlines"]
    print(f"policy over all its {soak.starts} processes: {ticks} periods, {missed} missed deadlines "
          f"({100.0 * missed / max(1, ticks):.1f} %); kill: commands stop at once (time to hold = last command "
          f"received - kill), the arm at rest 2 s later (max joint speed "
          f"{max([r['arm_speed_after_2s'] for r in rows if 'arm_speed_after_2s' in r], default=float('nan')):.4f} "
          f"rad/s); loss: {[round(r['received_pct']) for r in rows if 'received_pct' in r]} % of commands received, "
          f"{[round(r['held_pct']) for r in rows if 'held_pct' in r]} % of reports holding; recovery includes the "
          f"restart of the node process (imports, bundle load)")
    return 0 if outside == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
