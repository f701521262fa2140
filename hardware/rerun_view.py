"""What a run does, in time, in Rerun: camera images, joint positions and targets, the tool point and goal in
3-D, actions, rewards, success, the safety filter's status and the planner's chosen trajectory.

`view=rerun` on `robot-rl train/eval/deploy/sysid excite/fit` opens a `RerunView`; `robot-rl view
recording=BAG` plays a rosbag2 recording into one. With a Rerun viewer listening (`rerun` started on this
machine, gRPC port 9876) the data streams to it live; otherwise, and whenever `rrd=` names a file, it is saved as
an `.rrd` file (open it later with `rerun FILE.rrd`), so a headless run or a test gets the same view.

Entity paths (one subtree per environment / robot, `env/<i>`; the deployed arm is `env/0`):
    env/<i>/camera                    Image (the newest frame of a frame stack)
    env/<i>/joints/position, .../target   Scalars, one series per joint (named)
    env/<i>/scene/tool, scene/goal, scene/object   Points3D (m, robot base frame)
    env/<i>/scene/plan                LineStrips3D: the planner's chosen tool path, when it has one
    env/<i>/plan/actions              Tensor (horizon x action): the planner's chosen action sequence
    env/<i>/action, reward, success   Scalars
    env/<i>/safety                    TextLog on each status change; env/<i>/safety/interventions Scalars
    <anything>                        `log_scalars(path, values)` for other curves (losses, sysid residuals)
    sysid/<segment>/{measured,prior,fitted}/position, .../residual   `sysid fit`: per joint, on `time_s`
Timelines: `step` (a sequence: environment steps in training/eval), `time` (ROS 2 time stamps in ns: deploy,
recordings) and `time_s` (seconds from a recording's start: sysid excite/fit).

Imports rerun lazily (inside RerunView), and no torch: hardware/ stays importable without either.
"""
from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

VIEWER_HOST, VIEWER_PORT = "127.0.0.1", 9876      # the Rerun viewer's default gRPC endpoint
VIEWS = ("", "rerun")


class ViewError(ValueError):
    """A view option or recording that cannot be shown: names the key or file."""


def viewer_running(host: str = VIEWER_HOST, port: int = VIEWER_PORT, timeout_s: float = 0.2) -> bool:
    """A Rerun viewer accepts connections on this machine (else the view goes to an .rrd file)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def check_view(view: str) -> None:
    if view not in VIEWS:
        raise ViewError(f"view={view!r}: expected one of {[v for v in VIEWS if v]} (or empty for none)")


def _image_hwc(image: np.ndarray) -> np.ndarray:
    """HWC uint8 from HWC, CHW or a channel-stacked frame stack (3k x H x W: the newest frame, the last 3)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] % 3 == 0 and image.shape[-1] not in (1, 3, 4):
        image = image[-3:].transpose(1, 2, 0)
    if image.dtype != np.uint8:
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


class RerunView:
    """One Rerun recording of a run. Call the log_* methods as things happen; `close()` at the end.

    Interface for training/eval loops (robot_rl/train.py, evaluate.py):
        view = RerunView("train panda-reach", rrd=run_folder / "view.rrd", obs_layout=env_info.obs_layout,
                         joint_names=env_info.joint_names)
        view.log_step(step, env_index, obs, action, reward, info)   # after each env.step; obs/info as the env's
        view.log_plan(step, env_index, actions, tool_path)            # the planner's chosen sequence, (H, A);
                                        # tool_path: robot_rl.planned_path.tool_path(env, actions), (H + 1, 3)
        view.close()
    `obs` is the environment's observation dict ("state", "pixels"), numpy arrays (the observation after the
    step); `info` may carry "success", "ee_pos"/"tool", "goal", "object_pos", "joint_positions",
    "joint_targets", "joint_names", "safety" (given ones win over those read from the state by obs_layout).
    """

    def __init__(self, application: str, rrd: str | Path | None = None, connect: bool | None = None,
                 obs_layout: Sequence[tuple[str, int]] | None = None, joint_names: Sequence[str] | None = None):
        """`obs_layout` ([(name, size), ...] of the state vector, as EnvInfo.obs_layout) lets log_step read the
        joint positions, tool point, goal and object out of obs["state"]; `joint_names` names the joints."""
        import rerun as rr

        self.rr = rr
        self.rec = rr.RecordingStream(application_id=application.replace(" ", "_"))
        live = viewer_running() if connect is None else connect
        self.path = Path(rrd) if rrd else (None if live else Path(f"{application.split()[0]}_view.rrd"))
        sinks = []
        if live:
            sinks.append(rr.GrpcSink())
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            sinks.append(rr.FileSink(str(self.path)))
        self.rec.set_sinks(*sinks)
        self.live = live
        self._named: set[str] = set()
        self._safety: dict[int, str] = {}
        self.layout: dict[str, slice] = {}
        start = 0
        for name, size in obs_layout or ():
            self.layout[name] = slice(start, start + int(size))
            start += int(size)
        self.joint_names = [j for j in joint_names or () if "finger" not in j] or None

    def state_fields(self, state) -> dict:
        """The info fields log_step shows, read out of a state vector by the observation layout."""
        if not self.layout or state is None:
            return {}
        state = np.asarray(state, dtype=np.float64).reshape(-1)
        pick = {"joint_positions": "arm_qpos", "ee_pos": "ee_pos", "goal": "goal_pos", "object_pos": "object_pos"}
        out = {key: state[self.layout[part]] for key, part in pick.items() if part in self.layout}
        if self.joint_names and len(self.joint_names) == len(out.get("joint_positions", ())):
            out["joint_names"] = self.joint_names
        return out

    # ------------------------------------------------------------------ time
    def set_time(self, step: int | None = None, time_ns: int | None = None) -> None:
        if step is not None:
            self.rec.set_time("step", sequence=int(step))
        if time_ns is not None:
            self.rec.set_time("time", timestamp=np.datetime64(int(time_ns), "ns"))

    # ------------------------------------------------------------------ pieces
    def log_scalars(self, path: str, values, names: Sequence[str] | None = None) -> None:
        values = np.atleast_1d(np.asarray(values, dtype=np.float64))
        if names is not None and path not in self._named:   # series names once, as static data
            self.rec.log(path, self.rr.SeriesLines(names=list(names)), static=True)
            self._named.add(path)
        self.rec.log(path, self.rr.Scalars(values))

    def log_series(self, path: str, times_s, values, names: Sequence[str] | None = None,
                   timeline: str = "time_s") -> None:
        """A whole time series at once (T samples x n series; times in s on `timeline`): recordings, sysid fits."""
        values = np.asarray(values, dtype=np.float64).reshape(len(times_s), -1)
        if names is not None and path not in self._named:
            self.rec.log(path, self.rr.SeriesLines(names=list(names)), static=True)
            self._named.add(path)
        columns = self.rr.Scalars.columns(scalars=values.reshape(-1)).partition([values.shape[1]] * len(values))
        self.rec.send_columns(path, indexes=[self.rr.TimeColumn(timeline, duration=np.asarray(times_s, float))],
                              columns=columns)

    def log_image(self, path: str, image: np.ndarray) -> None:
        self.rec.log(path, self.rr.Image(_image_hwc(image)))

    def log_points(self, path: str, points, color: Sequence[int], radius: float = 0.01) -> None:
        self.rec.log(path, self.rr.Points3D(np.asarray(points, float).reshape(-1, 3), colors=[color],
                                            radii=radius))

    def log_joints(self, prefix: str, positions=None, targets=None, names: Sequence[str] | None = None) -> None:
        if positions is not None:
            self.log_scalars(f"{prefix}/joints/position", positions, names)
        if targets is not None:
            self.log_scalars(f"{prefix}/joints/target", targets, names)

    def log_scene(self, prefix: str, tool=None, goal=None, object_pos=None) -> None:
        if tool is not None:
            self.log_points(f"{prefix}/scene/tool", tool, (255, 160, 0))
        if goal is not None:
            self.log_points(f"{prefix}/scene/goal", goal, (0, 200, 80), radius=0.015)
        if object_pos is not None:
            self.log_points(f"{prefix}/scene/object", object_pos, (60, 120, 255))

    def log_safety(self, prefix: str, status: str | None, interventions: Mapping[str, float] | None = None,
                   key: int = 0) -> None:
        """The safety filter's status (logged as text when it changes) and its intervention counters."""
        if status is not None and self._safety.get(key) != status:
            level = "INFO" if status == "ok" else "WARN"   # hardware.safety.SafetyStatus values
            self.rec.log(f"{prefix}/safety", self.rr.TextLog(f"safety: {status}", level=level))
            self._safety[key] = status
        if interventions:
            names = sorted(interventions)
            self.log_scalars(f"{prefix}/safety/interventions", [interventions[n] for n in names], names)

    # ------------------------------------------------------------------ training / evaluation
    def log_step(self, step: int, env_index: int, obs: Mapping[str, np.ndarray] | None, action, reward: float,
                 info: Mapping | None = None) -> None:
        """One environment step of environment `env_index` at global step `step`."""
        info = {**self.state_fields(obs.get("state") if obs is not None else None), **(info or {})}
        prefix = f"env/{env_index}"
        self.set_time(step=step)
        if obs is not None and obs.get("pixels") is not None:
            self.log_image(f"{prefix}/camera", obs["pixels"])
        if action is not None:
            self.log_scalars(f"{prefix}/action", action)
        if reward is not None:
            self.log_scalars(f"{prefix}/reward", float(reward))
        if "success" in info:
            self.log_scalars(f"{prefix}/success", float(bool(info["success"])))
        self.log_joints(prefix, info.get("joint_positions"), info.get("joint_targets"), info.get("joint_names"))
        self.log_scene(prefix, info.get("ee_pos", info.get("tool")), info.get("goal"), info.get("object_pos"))
        if "safety" in info:
            self.log_safety(prefix, str(info["safety"]), key=env_index)

    def log_plan(self, step: int, env_index: int, actions, tool_path=None) -> None:
        """The planner's chosen trajectory: its action sequence (H, A) and, when known, the tool path (H, 3)."""
        prefix = f"env/{env_index}"
        self.set_time(step=step)
        self.rec.log(f"{prefix}/plan/actions", self.rr.Tensor(np.asarray(actions, np.float32),
                                                              dim_names=["horizon", "action"]))
        if tool_path is not None:
            self.rec.log(f"{prefix}/scene/plan", self.rr.LineStrips3D([np.asarray(tool_path, float)],
                                                                      colors=[(255, 60, 200)]))

    # ------------------------------------------------------------------ the deployed stack
    def log_task_state(self, state: Mapping, joint_names: Sequence[str] | None = None, prefix: str = "env/0") -> None:
        """sim_robot_node's ~/task_state report (ee_pos, goal, object_pose, arm_target, success). The joint
        positions come from /joint_states (named, at the arm's rate), so arm_qpos is not logged twice."""
        self.set_time(time_ns=state.get("stamp_ns"))
        self.log_joints(prefix, None, state.get("arm_target"), joint_names)
        obj = state.get("object_pose")
        self.log_scene(prefix, state.get("ee_pos"), state.get("goal"), obj[:3] if obj else None)
        if "success" in state:
            self.log_scalars(f"{prefix}/success", float(bool(state["success"])))
        if "distance" in state:
            self.log_scalars(f"{prefix}/distance", float(state["distance"]))

    def log_policy_diagnostics(self, report: Mapping, prefix: str = "env/0") -> None:
        """policy_node's ~/diagnostics report: the safety filter's status and counters, compute time."""
        self.set_time(time_ns=report.get("stamp_ns"))
        self.log_safety(prefix, report.get("status"), report.get("safety"))
        if "compute_ms_p50" in report:
            self.log_scalars(f"{prefix}/policy/compute_ms", [report["compute_ms_p50"], report["compute_ms_p99"]],
                             ["p50", "p99"])

    def log_message(self, topic: str, stamp_ns: int, msg, prefix: str = "env/0") -> bool:
        """One ROS 2 message (our hardware.messages types) by what it is; False for types not shown."""
        from hardware import messages as m

        self.set_time(time_ns=stamp_ns)
        if isinstance(msg, m.JointState):
            self.log_scalars(f"{prefix}/joints/position", list(msg.position), list(msg.name))
        elif isinstance(msg, m.Image):
            self.log_image(f"{prefix}/camera", m.array_from_image(msg)[..., :3] if msg.encoding != "mono8"
                           else np.repeat(m.array_from_image(msg)[..., None], 3, axis=2))
        elif isinstance(msg, m.Float64MultiArray) and topic.endswith("/commands"):
            path = "gripper/target" if "gripper" in topic else "joints/target"
            self.log_scalars(f"{prefix}/{path}", list(msg.data))
        elif isinstance(msg, m.JointTrajectory) and msg.points:
            self.log_scalars(f"{prefix}/joints/target", list(msg.points[0].positions), list(msg.joint_names))
        elif isinstance(msg, m.String) and topic.endswith("task_state"):
            self.log_task_state(json.loads(msg.data), prefix=prefix)
        elif isinstance(msg, m.String) and topic.endswith("diagnostics"):
            self.log_policy_diagnostics(json.loads(msg.data), prefix=prefix)
        elif isinstance(msg, m.Float64MultiArray) and topic in ("/goal", "/object_pose"):
            self.log_scene(prefix, goal=list(msg.data)[:3] if topic == "/goal" else None,
                           object_pos=list(msg.data)[:3] if topic == "/object_pose" else None)
        elif isinstance(msg, m.Bool):
            self.rec.log(f"{prefix}{topic}", self.rr.TextLog(f"{topic}: {msg.data}"))
        else:
            return False
        return True

    def close(self) -> Path | None:
        """Flush and close; returns the .rrd file written (None when it only streamed to a viewer)."""
        self.rec.flush()
        self.rec.disconnect()
        return self.path


DEPLOY_TOPICS = (("/sim_robot/task_state", "String"), ("/policy/diagnostics", "String"),
                 ("/joint_states", "JointState"), ("/camera/color/image_raw", "Image"),
                 ("/forward_position_controller/commands", "Float64MultiArray"))


def subscribe_view(view: RerunView, node) -> None:
    """Show the deployed stack's topics (a DDS or rclpy node of hardware/transport) in `view` as they arrive."""
    from hardware import messages as m
    from hardware.transport.base import QOS_DEFAULT, QOS_SENSOR_DATA

    for topic, kind in DEPLOY_TOPICS:
        qos = QOS_SENSOR_DATA if kind in ("JointState", "Image") else QOS_DEFAULT
        node.create_subscription(getattr(m, kind), topic,
                                 lambda msg, t=topic: view.log_message(t, node.now_ns(), msg), qos)


def log_joint_recording(view: RerunView, recording, prefix: str = "env/0") -> None:
    """A calibration JointRecording (state and command stamps in ns): joint positions and targets on `time_s`."""
    t0 = min(int(recording.state_stamps[0]), int(recording.command_stamps[0]))
    names = list(recording.joint_names)
    view.log_series(f"{prefix}/joints/position", (recording.state_stamps - t0) * 1e-9, recording.position, names)
    view.log_series(f"{prefix}/joints/target", (recording.command_stamps - t0) * 1e-9, recording.command, names)


def open_view(view: str, application: str, rrd: str | Path | None) -> RerunView | None:
    """The view a command's `view=`/`view_rrd=` keys ask for, or None for `view=` empty."""
    check_view(view)
    return RerunView(application, rrd=rrd or None) if view == "rerun" else None


# ------------------------------------------------------------------ robot-rl view recording=BAG
@dataclass
class Config:
    recording: str = ""            # rosbag2 folder (MCAP or sqlite3), as the recorder writes it
    rrd: str = ""                  # output .rrd file; "" : <recording>.rrd beside the recording (also when a
                                   # viewer is live: then the data goes to both)
    topics: str = ""               # comma-separated topics to show; "" : every topic of a known type


def play_recording(config: Config, log=print) -> RerunView:
    from hardware.recording import read_bag

    path = Path(config.recording)
    if not config.recording or not path.exists():
        raise ViewError(f"recording={config.recording!r}: expected a rosbag2 folder written by the recorder")
    rrd = config.rrd or str(path.with_suffix(".rrd") if path.is_file() else path.parent / f"{path.name}.rrd")
    view = RerunView(f"view {path.name}", rrd=rrd)
    topics = [t.strip() for t in config.topics.split(",") if t.strip()] or None
    counts: dict[str, int] = {}
    try:
        for topic, stamp_ns, msg in read_bag(path, topics):
            if view.log_message(topic, stamp_ns, msg):
                counts[topic] = counts.get(topic, 0) + 1
    except KeyError as err:
        view.close()
        raise ViewError(str(err.args[0])) from None
    except Exception as err:  # rosbags raises several unrelated types for unreadable bags
        view.close()
        raise ViewError(f"{path}: not a readable rosbag2 recording ({err})") from None
    view.close()
    if not counts:
        raise ViewError(f"{path}: no messages of a type the view shows (JointState, Image, commands, task state)")
    log(f"{path}: {sum(counts.values())} messages on {len(counts)} topics -> "
        f"{view.path if view.path else 'the live viewer'}")
    return view


def run(config: Config) -> int:
    play_recording(config)
    return 0
