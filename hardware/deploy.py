"""`robot-rl deploy bundle=bundles/x robot=sim`: the ROS 2 bringup without ROS 2.

Starts, each in its own process over DDS (ROS 2 wire conventions), what `ros2 launch robot_rl bringup.launch.py` starts: the recorder (record=FOLDER), sim_robot_node
(robot=sim; robot=real expects the arm's ros2_control on the domain) and policy_node, with the same parameter
YAML (launch/config). Runs until Ctrl-C or duration_s; with episode_s > 0 the simulated cell gets a new goal
every episode_s and each episode's success (tool centre within the task's threshold at its end) is reported.
Stops the policy first (the arm then holds its last target), then the arm, then the recorder.

Discovery is ROS 2's: the nodes join ROS_DOMAIN_ID (or domain_id=) with the range of ROS_AUTOMATIC_DISCOVERY_RANGE
(or discovery_range=; SUBNET when unset, as a stock ROS 2 node), ROS_STATIC_PEERS and ROS_LOCALHOST_ONLY, the way
rmw_cyclonedds reads them, so `ros2 topic echo /joint_states` on the same machine or network sees them when its
own settings match. local_only=true pins all DDS traffic to the loopback interface instead (tests, isolated
runs): a stock ROS 2 node then does NOT see these nodes.

Never imports torch (hardware/ runs on the robot computer without it).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROBOTS = ("sim", "real")
CONFIG_DIR_CANDIDATES = (Path(__file__).resolve().parents[1] / "launch" / "config",
                         Path(sys.prefix) / "share" / "robot_rl" / "config")


class DeployError(ValueError):
    pass


@dataclass
class Config:
    bundle: str = ""                       # policy bundle folder (robot-rl export)
    robot: str = "sim"                     # sim: start sim_robot_node | real: the arm's ros2_control is running
    mode: str = "policy"                   # policy | planner
    command_interface: str = "forward"     # forward | trajectory
    control_rate_hz: float = 0.0           # 0: the bundle's
    backend: str = "mujoco"                # simulated robot: mujoco | pybullet
    task: str = "reach"                    # simulated robot's task
    robot_params: str = ""                 # simulated robot's hidden parameters (sim/params.py file)
    seed: int = 0
    duration_s: float = 0.0                # 0: until Ctrl-C
    episode_s: float = 0.0                 # > 0 (robot=sim): a new goal every episode_s, success reported
    record: str = ""                       # rosbag2 output folder; empty: no recording
    domain_id: int = -1                    # -1: ROS_DOMAIN_ID (0 when unset)
    discovery_range: str = ""              # "": ROS_AUTOMATIC_DISCOVERY_RANGE (SUBNET when unset) | SUBNET |
                                           # LOCALHOST | OFF | SYSTEM_DEFAULT, as ROS 2 reads it
    local_only: bool = False               # true: DDS on the loopback interface only (hidden from a ROS 2 graph)
    config_dir: str = ""                   # parameter YAML folder; empty: launch/config (or the installed one)
    startup_timeout_s: float = 60.0
    view: str = ""                         # rerun: show the run in Rerun (hardware/rerun_view.py)
    view_rrd: str = ""                     # view=rerun: the .rrd file; empty: deploy_view.rrd unless a viewer runs


def config_dir(config: Config) -> Path:
    candidates = [Path(config.config_dir)] if config.config_dir else list(CONFIG_DIR_CANDIDATES)
    for path in candidates:
        if (path / "policy.yaml").is_file():
            return path
    raise DeployError(f"config_dir: no policy.yaml in {[str(p) for p in candidates]}")


def check(config: Config) -> None:
    if not config.bundle or not Path(config.bundle).is_dir():
        raise DeployError(f"bundle={config.bundle!r}: expected a bundle folder written by `robot-rl export`")
    if config.robot not in ROBOTS:
        raise DeployError(f"robot={config.robot!r}: expected one of {ROBOTS}")
    if config.robot_params and not Path(config.robot_params).is_file():
        raise DeployError(f"robot_params={config.robot_params!r}: file not found")
    if config.duration_s < 0 or config.episode_s < 0:
        raise DeployError(f"duration_s={config.duration_s}, episode_s={config.episode_s}: expected >= 0")
    from hardware.transport.dds_participant import DISCOVERY_RANGES

    if config.discovery_range and config.discovery_range not in DISCOVERY_RANGES:
        raise DeployError(f"discovery_range={config.discovery_range!r}: expected one of {DISCOVERY_RANGES} "
                          "(empty: ROS_AUTOMATIC_DISCOVERY_RANGE)")
    if config.episode_s > 0 and config.robot != "sim":
        raise DeployError("episode_s > 0 needs robot=sim (a real cell resets its own goals)")
    from hardware.rerun_view import check_view

    check_view(config.view)


def node_commands(config: Config, configs: Path) -> list[tuple[str, list[str]]]:
    """(name, argv) of each node process, in start order (the recorder first, so it misses nothing)."""
    python = [sys.executable, "-m"]
    commands = []
    if config.record:
        commands.append(("recorder", python + ["hardware.nodes.recorder_node", "--ros-args", "--params-file",
                                               str(configs / "recorder.yaml"), "-p", f"output:={config.record}"]))
    if config.robot == "sim":
        sim = ["hardware.nodes.sim_robot_node", "--ros-args", "--params-file", str(configs / "sim_robot.yaml"),
               "-p", f"backend:={config.backend}", "-p", f"task:={config.task}", "-p", f"seed:={config.seed}"]
        if config.robot_params:
            sim += ["-p", f"params_file:={Path(config.robot_params).resolve()}"]
        commands.append(("sim_robot", python + sim))
    policy = ["hardware.nodes.policy_node", "--ros-args", "--params-file", str(configs / "policy.yaml"),
              "-p", f"bundle:={Path(config.bundle).resolve()}", "-p", f"mode:={config.mode}",
              "-p", f"command_interface:={config.command_interface}", "-p", f"seed:={config.seed}"]
    if config.control_rate_hz:
        policy += ["-p", f"control_rate_hz:={float(config.control_rate_hz)}"]
    commands.append(("policy", python + policy))
    return commands


def node_env(config: Config, domain_id: int) -> dict[str, str]:
    """The node processes' environment: this one's (ROS 2's discovery variables, CYCLONEDDS_URI, ROS_SECURITY_*
    reach the nodes as they are), with the domain, the DDS transport and the config's discovery choices."""
    from hardware.transport.dds import local_only_config

    env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id), "ROBOT_RL_TRANSPORT": "dds",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    if config.discovery_range:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = config.discovery_range
    if config.local_only:
        env["CYCLONEDDS_URI"] = local_only_config()
    return env


def deploy(config: Config, log=print) -> dict:
    """Run the stack; returns a summary (episodes, the policy's last diagnostics, exit codes)."""
    from hardware import messages as m
    from hardware.transport.dds import DdsExecutor, DdsNode, default_domain_id
    from hardware.transport.dds_participant import domain_config

    check(config)
    configs = config_dir(config)
    domain_id = default_domain_id() if config.domain_id < 0 else config.domain_id
    env = node_env(config, domain_id)
    # the monitor in this process joins as the nodes do (their environment, not this process's)
    dds_config = domain_config(env) or env.get("CYCLONEDDS_URI")

    monitor = DdsNode("deploy_monitor", domain_id=domain_id, config=dds_config)
    latest: dict[str, dict] = {}
    monitor.create_subscription(m.String, "/sim_robot/task_state",
                                lambda msg: latest.__setitem__("task", json.loads(msg.data)))
    monitor.create_subscription(m.String, "/policy/diagnostics",
                                lambda msg: latest.__setitem__("policy", json.loads(msg.data)))
    reset = monitor.create_publisher(m.Float64MultiArray, "/sim_robot/reset")
    executor = DdsExecutor([monitor])
    view = None
    if config.view:   # rerun is imported only here: hardware/ runs without it
        from hardware.rerun_view import open_view, subscribe_view

        view = open_view(config.view, "deploy", config.view_rrd)
        subscribe_view(view, monitor)

    stop = {"requested": False}
    previous = {sig: signal.signal(sig, lambda *_: stop.__setitem__("requested", True))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    processes: dict[str, subprocess.Popen] = {}
    episodes: list[dict] = []
    try:
        for name, argv in node_commands(config, configs):
            log(f"starting {name}: {' '.join(argv[2:])}")
            processes[name] = subprocess.Popen(argv, env=env, start_new_session=True)
        # Up when the policy reports and (robot=sim) the arm publishes its task state.
        ready = executor.spin_until(lambda: "policy" in latest and (config.robot != "sim" or (
                                        "task" in latest and reset.matched_subscriptions() > 0))
                                    or stop["requested"] or any(p.poll() is not None for p in processes.values()),
                                    config.startup_timeout_s)
        if not ready or any(p.poll() is not None for p in processes.values()):
            raise DeployError(f"the nodes did not come up within {config.startup_timeout_s} s "
                              f"(exited: {[n for n, p in processes.items() if p.poll() is not None]})")
        start = episode_start = time.monotonic()
        next_report = start + 1.0
        episode = new_episode(config, latest, reset, m)
        while not stop["requested"]:
            executor.spin_once(0.05)
            now = time.monotonic()
            dead = [n for n, p in processes.items() if p.poll() is not None]
            if dead:
                log(f"node(s) {dead} exited: stopping")
                break
            if episode is not None and "start_distance" not in episode and latest["task"]["goal"] != episode["old"]:
                episode["start_distance"] = latest["task"]["distance"]   # the first report with the new goal
            if episode is not None and now - episode_start >= config.episode_s and "start_distance" in episode:
                episodes.append({"start_distance": episode["start_distance"],
                                 **{k: latest["task"][k] for k in ("goal", "distance", "success")}})
                log(f"episode {len(episodes)}: distance {episodes[-1]['start_distance']:.3f} -> "
                    f"{episodes[-1]['distance']:.3f} m, success {episodes[-1]['success']}")
                episode = new_episode(config, latest, reset, m)
                episode_start = now
            if now >= next_report:
                log(progress_line(latest, now - start))
                next_report += 1.0
            if config.duration_s and now - start >= config.duration_s:
                break
    finally:
        codes = stop_processes(processes, log)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        monitor.destroy()
        if view is not None:
            log(f"view: {view.close() or 'streamed to the Rerun viewer'}")
    summary = {"episodes": episodes, "success_rate": (sum(e["success"] for e in episodes) / len(episodes)
                                                      if episodes else None),
               "policy": latest.get("policy"), "task": latest.get("task"), "exit_codes": codes}
    return summary


def new_episode(config: Config, latest: dict, reset, m) -> dict | None:
    """With episode_s > 0: ask the simulated cell for a new goal; the episode starts when it reports it."""
    if config.episode_s <= 0:
        return None
    reset.publish(m.float64_multi_array([]))
    return {"old": latest["task"]["goal"]}


def progress_line(latest: dict, elapsed: float) -> str:
    parts = [f"[{elapsed:6.1f} s]"]
    task, policy = latest.get("task"), latest.get("policy")
    if task:
        parts.append(f"distance {task['distance']:.3f} m{' (success)' if task['success'] else ''}")
    if policy:
        parts.append(f"safety {policy['status']}, compute p50/p99 {policy['compute_ms_p50']:.1f}/"
                     f"{policy['compute_ms_p99']:.1f} ms, missed {policy['missed_deadlines']}")
    return "  ".join(parts)


def stop_processes(processes: dict[str, subprocess.Popen], log) -> dict[str, int]:
    """SIGINT in reverse start order (policy, arm, recorder), then SIGKILL what does not stop in 15 s."""
    codes = {}
    for name in reversed(list(processes)):
        proc = processes[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            codes[name] = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop on SIGINT: killing it")
            proc.kill()
            codes[name] = proc.wait()
    return codes


def run(config: Config) -> int:
    summary = deploy(config)
    if summary["episodes"]:
        episodes = summary["episodes"]
        print(f"success rate {summary['success_rate']:.2f} over {len(episodes)} episodes; distance to the goal "
              f"{sum(e['start_distance'] for e in episodes) / len(episodes):.3f} m at the start, "
              f"{sum(e['distance'] for e in episodes) / len(episodes):.3f} m at the end (mean)")
    if summary["policy"]:
        d = summary["policy"]
        print(f"policy: {d['published']} commands in {d['ticks']} periods at {d['rate_hz']:g} Hz, "
              f"{d['missed_deadlines']} missed deadlines, compute p50/p99 {d['compute_ms_p50']:.2f}/"
              f"{d['compute_ms_p99']:.2f} ms, observation->command p50/p99 {d['obs_age_ms_p50']:.2f}/"
              f"{d['obs_age_ms_p99']:.2f} ms, safety {d['safety']}")
    failed = {n: c for n, c in summary["exit_codes"].items() if c not in (0, -signal.SIGINT)}
    if failed:
        print(f"node(s) exited with errors: {failed}", file=sys.stderr)
        return 1
    return 0
