"""Robot recordings (rosbag2, MCAP or sqlite3, read with `rosbags`) -> demonstrations (docs/formats.md), so
teleoperated demos from a real arm feed MoDem exactly as scripted-expert demos do. Datasets LeRobot recorded on a
real arm (LeRobotDataset v3) convert through the same trajectory -> episode step (`convert_lerobot`).

Each recording is one episode. Topics:
- `/joint_states` (sensor_msgs/JointState): arm joints and fingers, by name (header stamp, else receive time);
- the command topic (std_msgs/Float64MultiArray, receive time): the arm's joint position targets in the
  robot's arm-joint order, optionally followed by the gripper finger gap (m);
- optionally camera images (sensor_msgs/Image, rgb8/bgr8/rgba8/bgra8/mono8) and the object pose
  (geometry_msgs/PoseStamped, robot base frame) for the push/pick state vector; the goal comes from the config.

Time alignment to the control rate: tick 0 is the last joint-state sample at or before the first command
(the observation that command answered); tick k is k / control_hz later. The observation at a tick
interpolates the joint states linearly; the targets in effect over (t_k, t_k+1) are the latest command sent
before t_k+1 (zero-order hold, as the controller holds them). Actions invert sim.action_mapping:
a_k = (targets_k - targets_k-1) / max_joint_step, with targets_-1 the measured joint positions at tick 0
(where the arm holds before the first command), clipped to [-1, 1] (steps beyond the simulator's per-step
limit are counted and reported). The gripper action comes from the commanded gap, else from the measured gap
one tick later. ee_pos is forward kinematics of the simulator's robot model; images are resized with OpenCV
(area interpolation) to the policy's camera size.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from robot_rl.demo_dataset import DemoEpisode, DemoMeta

JOINT_STATES = "/joint_states"
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
MULTIARRAY_TYPE = "std_msgs/msg/Float64MultiArray"
IMAGE_TYPE = "sensor_msgs/msg/Image"
POSE_TYPE = "geometry_msgs/msg/PoseStamped"
CHANNELS = {"rgb8": (3, False), "bgr8": (3, True), "rgba8": (4, False), "bgra8": (4, True), "mono8": (1, False)}


class RecordingError(ValueError):
    """A recording that cannot be converted: names the file, the topic or field and what was expected."""


def _stamp(header, bag_time: int) -> int:
    ns = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
    return ns if ns > 0 else bag_time


def read_topics(path: Path, command_topic: str, image_topic: str, object_topic: str) -> dict:
    """Decode the topics the converter uses into time-stamped numpy arrays."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    try:
        reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE))
        reader.open()
    except Exception as err:  # rosbags raises several unrelated types for unreadable bags
        raise RecordingError(f"{path}: not a readable rosbag2 recording ({err})") from None
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}

        def need(topic: str, msgtype: str) -> None:
            if topic not in topics:
                raise RecordingError(f"{path}: topic {topic!r} missing; recorded topics: {sorted(topics)}")
            if topics[topic] != msgtype:
                raise RecordingError(f"{path}: topic {topic!r} has type {topics[topic]}; expected {msgtype}")

        need(JOINT_STATES, JOINT_STATE_TYPE)
        if not command_topic:
            found = sorted(t for t, ty in topics.items() if ty == MULTIARRAY_TYPE)
            if len(found) != 1:
                raise RecordingError(f"{path}: expected exactly one {MULTIARRAY_TYPE} command topic (set "
                                     f"rec.command_topic=...), found {found}")
            command_topic = found[0]
        need(command_topic, MULTIARRAY_TYPE)
        wanted = {JOINT_STATES: "joints", command_topic: "command"}
        if image_topic and image_topic in topics:
            need(image_topic, IMAGE_TYPE)
            wanted[image_topic] = "image"
        if object_topic:
            need(object_topic, POSE_TYPE)
            wanted[object_topic] = "object"
        out: dict[str, list] = {v: [] for v in wanted.values()}
        connections = [c for c in reader.connections if c.topic in wanted]
        for conn, bag_time, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, conn.msgtype)
            kind = wanted[conn.topic]
            if kind == "joints":
                out[kind].append((_stamp(msg.header, bag_time), list(msg.name), np.asarray(msg.position, float),
                                  np.asarray(msg.velocity, float)))
            elif kind == "command":
                out[kind].append((bag_time, np.asarray(msg.data, float)))
            elif kind == "image":
                out[kind].append((_stamp(msg.header, bag_time), _image_array(msg, path, conn.topic)))
            else:
                p, q = msg.pose.position, msg.pose.orientation
                out[kind].append((_stamp(msg.header, bag_time), np.array([p.x, p.y, p.z, q.w, q.x, q.y, q.z])))
    finally:
        reader.close()
    out["command_topic"] = command_topic
    return out


def _image_array(msg, path: Path, topic: str) -> np.ndarray:
    if msg.encoding not in CHANNELS:
        raise RecordingError(f"{path}: topic {topic!r} image encoding {msg.encoding!r}; expected one of "
                             f"{sorted(CHANNELS)}")
    channels, bgr = CHANNELS[msg.encoding]
    data = np.asarray(msg.data, np.uint8)
    if msg.step * msg.height != data.size or msg.step < msg.width * channels:
        raise RecordingError(f"{path}: topic {topic!r} image of {data.size} bytes does not match "
                             f"{msg.height} rows x step {msg.step}")
    image = data.reshape(msg.height, msg.step)[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
    if channels == 1:
        image = np.repeat(image, 3, axis=2)
    image = image[..., :3]
    return image[..., ::-1] if bgr else image


def _latest_before(stamps: np.ndarray, t: np.ndarray, strict: bool) -> np.ndarray:
    """Index of the last stamp < t (strict) or <= t, -1 where none."""
    return np.searchsorted(stamps, t, side="left" if strict else "right") - 1


def convert_recording(recordings: str, task: str, obs: str = "state", render_size: int = 64, rec=None
                      ) -> tuple[DemoMeta, list[DemoEpisode]]:
    """Convert one or more recordings (comma-separated paths) of `task` into demos for observations `obs`
    (state | pixels | state+pixels)."""
    from robot_rl.demos import RecordingConfig
    from robot_rl.envs import make_env

    rec = rec or RecordingConfig()
    # a recording's commands are joint targets: its actions are the joint space's (train with action=joint)
    env, info = make_env(task, obs, render_size=render_size, action="joint")
    if info.obs_layout is None:
        raise RecordingError(f"task={task!r}: recordings convert for the sim/ arm tasks only")
    base = env.unwrapped
    try:
        episodes = [_convert_one(Path(p.strip()), base, info, obs, rec) for p in recordings.split(",") if p.strip()]
    finally:
        env.close()
    if not episodes:
        raise RecordingError(f"recording={recordings!r}: no recording given")
    keys = [k for k in ("state", "pixels") if getattr(episodes[0], k) is not None]
    shape = list(info.obs_spec["pixels"][0]) if "pixels" in keys else None
    meta = DemoMeta(task=task, obs_keys=keys, state_dim=sum(s for _, s in info.obs_layout) if "state" in keys
                    else None, pixel_shape=shape, action_dim=info.action_dim, control_hz=float(info.control_hz),
                    joint_names=info.joint_names, source=f"recording:{recordings}",
                    obs_layout=[list(x) for x in info.obs_layout] if "state" in keys else None)
    return meta, episodes


def _convert_one(path: Path, base, info, obs: str, rec) -> DemoEpisode:
    robot = base.robot
    n = robot.n_arm
    data = read_topics(path, rec.command_topic, rec.image_topic if "pixels" in obs else "", rec.object_topic)
    topic = data["command_topic"]
    if "pixels" in obs and not data.get("image"):
        raise RecordingError(f"{path}: obs={obs} needs camera images on {rec.image_topic!r}; none recorded")

    # joint states -> (N,) stamps, (N, n) arm positions/velocities, (N,) gripper width
    joints = sorted(data["joints"], key=lambda m: m[0])
    if len(joints) < 2:
        raise RecordingError(f"{path}: topic {JOINT_STATES!r} has {len(joints)} message(s); expected at least 2")
    names = [*robot.arm_joints, *robot.gripper_joints]
    js_t = np.array([m[0] for m in joints], np.int64)
    pos = np.zeros((len(joints), len(names)))
    vel = np.full((len(joints), n), np.nan)
    for i, (_, msg_names, p, v) in enumerate(joints):
        index = {name: j for j, name in enumerate(msg_names)}
        missing = [name for name in names if name not in index]
        if missing:
            raise RecordingError(f"{path}: {JOINT_STATES} message {i} lacks joint(s) {missing}; it names {msg_names}")
        pos[i] = p[[index[name] for name in names]]
        if v.size == len(msg_names):
            vel[i] = v[[index[name] for name in robot.arm_joints]]
    if not np.all(np.isfinite(pos)):
        raise RecordingError(f"{path}: {JOINT_STATES} has non-finite positions")
    width = pos[:, n:].sum(1)

    commands = sorted(data["command"], key=lambda m: m[0])
    if not commands:
        raise RecordingError(f"{path}: topic {topic!r} has no messages")
    sizes = {c[1].size for c in commands}
    if sizes - {n, n + 1} or len(sizes) != 1:
        raise RecordingError(f"{path}: topic {topic!r} messages have {sorted(sizes)} values; expected {n} arm "
                             f"joint targets (+1 gripper gap) in the order {list(robot.arm_joints)}")
    cmd_t = np.array([c[0] for c in commands], np.int64)
    cmd = np.stack([c[1] for c in commands])
    if not np.all(np.isfinite(cmd)):
        raise RecordingError(f"{path}: topic {topic!r} has non-finite targets")

    # control ticks
    dt = int(round(1e9 / base.control_hz))
    first = _latest_before(js_t, cmd_t[:1], strict=False)[0]
    t0 = js_t[first] if first >= 0 else cmd_t[0]
    end = min(js_t[-1], cmd_t[-1] + dt)
    steps = int((end - t0) // dt)
    if steps < 1:
        raise RecordingError(f"{path}: {(end - t0) * 1e-9:.3f} s of commands and joint states overlap; expected at "
                             f"least one control period ({dt * 1e-9:.3f} s)")
    ticks = t0 + dt * np.arange(steps + 1)
    q = np.stack([np.interp(ticks, js_t, pos[:, j]) for j in range(n)], 1)
    w = np.interp(ticks, js_t, width)
    if np.all(np.isfinite(vel)):
        qd = np.stack([np.interp(ticks, js_t, vel[:, j]) for j in range(n)], 1)
    else:
        qd = np.gradient(q, dt * 1e-9, axis=0)

    # targets in effect over (t_k, t_k+1): the latest command sent before t_k+1
    idx = _latest_before(cmd_t, ticks[1:], strict=True)
    if idx[0] < 0:
        raise RecordingError(f"{path}: no command on {topic!r} within the first control period")
    targets = cmd[idx, :n]
    gap = cmd[idx, n] if cmd.shape[1] == n + 1 else None

    obj = None
    if data.get("object"):
        poses = sorted(data["object"], key=lambda m: m[0])
        o_t = np.array([m[0] for m in poses], np.int64)
        o = np.stack([m[1] for m in poses])
        obj = np.stack([np.interp(ticks, o_t, o[:, j]) for j in range(7)], 1)
        obj[:, 3:] /= np.linalg.norm(obj[:, 3:], axis=1, keepdims=True)

    images = None
    if "pixels" in obs:
        frames = sorted(data["image"], key=lambda m: m[0])
        im_t = np.array([m[0] for m in frames], np.int64)
        nearest = np.clip(np.searchsorted(im_t, ticks), 1, len(im_t) - 1) if len(im_t) > 1 else np.zeros(
            len(ticks), int)
        if len(im_t) > 1:
            nearest = np.where(np.abs(im_t[nearest - 1] - ticks) <= np.abs(im_t[nearest] - ticks), nearest - 1,
                               nearest)
        gap_ns = np.abs(im_t[nearest] - ticks)
        if gap_ns.max() > dt:
            k = int(gap_ns.argmax())
            raise RecordingError(f"{path}: no camera image within {dt * 1e-6:.0f} ms of control step {k} "
                                 f"(nearest {gap_ns[k] * 1e-6:.0f} ms away)")
        images = [frames[i][1] for i in nearest]
    goal = _config_goal(rec)
    return episode_from_trajectory(str(path), base, info, obs, q, qd, w, targets, gap, goal, obj, images,
                                   rec.success_steps)


def _config_goal(rec) -> np.ndarray | None:
    goal = np.asarray(rec.goal, float) if len(rec.goal) else None
    if goal is not None and goal.shape != (3,):
        raise RecordingError(f"rec.goal={list(rec.goal)}: expected 3 numbers (m, robot base frame)")
    return goal


def episode_from_trajectory(where: str, base, info, obs: str, q: np.ndarray, qd: np.ndarray, w: np.ndarray,
                            targets: np.ndarray, gap: np.ndarray | None, goal: np.ndarray | None,
                            obj: np.ndarray | None, images: list | None, success_steps: int) -> DemoEpisode:
    """One demo episode from an arm trajectory sampled at the control rate (N = steps + 1 ticks): measured arm
    joints q (N, n), velocities qd (N, n), finger gap w (N,), the joint targets in effect over each step
    (steps, n), the commanded finger gap per step (None: the measured one a tick later), the goal (3,) and
    object pose (N, 7: xyz + wxyz) when known, camera images at the ticks (H, W, 3 uint8, any size)."""
    import cv2

    from sim import scene
    from sim.action_mapping import gripper_action
    from sim.tasks import TaskState

    robot = base.robot
    steps = len(targets)
    previous = np.vstack([q[:1], targets[:-1]])
    raw = (targets - previous) / robot.max_joint_step
    clipped = int(np.sum(np.abs(raw) > 1.0 + 1e-4))   # float32 targets (LeRobot) round a full step to 1+1e-7
    if clipped:
        print(f"{where}: {clipped} joint target step(s) exceed max_joint_step={robot.max_joint_step} rad per "
              f"control step; clipped (the simulated arm cannot follow them in one step)")
    gap = w[1:] if gap is None else gap
    grip = np.array([gripper_action(g, robot.gripper_max_width) for g in gap])
    action = np.concatenate([np.clip(raw, -1.0, 1.0), grip[:, None]], 1).astype(np.float32)

    # task state per tick (object from the pose topic, goal from the config)
    ee = np.stack([base.physics.forward_kinematics(qi)[:3] for qi in q])
    needs = {name for name, _ in info.obs_layout}
    missing = sorted(({"goal_pos"} & needs if goal is None else set()) |
                     ({"object_pos"} & needs if obj is None else set()))
    state = None
    if not missing:
        obj_pos = obj[:, :3] if obj is not None else np.zeros((len(q), 3))
        obj_quat = obj[:, 3:] if obj is not None else np.tile([1.0, 0, 0, 0], (len(q), 1))
        g = np.tile(goal, (len(q), 1))
        values = {"arm_qpos": q, "arm_qvel": qd, "gripper_width": w[:, None], "ee_pos": ee, "goal_pos": g,
                  "ee_to_goal": g - ee, "object_pos": obj_pos, "object_quat": obj_quat,
                  "ee_to_object": obj_pos - ee, "object_to_goal": g - obj_pos}
        state = np.concatenate([values[name] for name, _ in info.obs_layout], 1).astype(np.float32)
        success, reward = [], []
        for k in range(1, len(q)):
            # Finger contact is not recorded: a closed grip (cube width) at the cube stands in for it.
            touch = bool(abs(w[k] - 2 * scene.OBJECT_HALF_SIZE) < 0.006 and np.linalg.norm(ee[k] - obj_pos[k]) < 0.02)
            s = TaskState(ee_pos=ee[k], gripper_width=float(w[k]), object_pos=obj_pos[k], object_quat=obj_quat[k],
                          goal=goal, fingers_touch_object=touch)
            success.append(base.task.success(s))
            reward.append(base.task.sparse_reward(s) if base.reward_type == "sparse" else base.task.dense_reward(s))
    elif "state" in obs:
        raise RecordingError(f"{where}: the {base.task_name} state vector needs {missing} (set rec.goal=[x,y,z] "
                             f"and/or rec.object_topic=<PoseStamped topic>), or convert with obs=pixels")
    else:  # pixels only: success as the operator declares it (the last `success_steps` steps)
        if base.reward_type != "sparse":
            raise RecordingError(f"{where}: without the object pose and goal only sparse tasks get rewards; use "
                                 f"the task's -sparse variant")
        success = [k >= steps - success_steps for k in range(steps)]
        reward = [float(s) for s in success]

    pixels = None
    if "pixels" in obs:
        _, h, wdt = info.obs_spec["pixels"][0]
        frames = []
        for image in images:
            if image.shape[:2] != (h, wdt):
                image = cv2.resize(image, (wdt, h), interpolation=cv2.INTER_AREA)
            frames.append(image.transpose(2, 0, 1))
        pixels = np.ascontiguousarray(np.stack(frames), dtype=np.uint8)
    return DemoEpisode(action=action, reward=np.asarray(reward, np.float32), success=np.asarray(success, bool),
                       state=state, pixels=pixels)


def _named(names: list[str], wanted: list[str], suffix: str) -> list[int] | None:
    """Positions of `wanted` joints in a LeRobot feature's names (`joint` or `joint<suffix>`), None if any lacks."""
    index = {n: i for i, n in enumerate(names)}
    found = [index.get(f"{j}{suffix}", index.get(j if suffix == ".pos" else "")) for j in wanted]
    return None if any(i is None for i in found) else found


GRIPPER_NAMES = ("gripper.pos", "gripper", "gripper_width", "gripper.width")   # finger gap in m


def convert_lerobot(path: str | Path, task: str, obs: str = "", render_size: int = 64, rec=None,
                    max_episodes: int = 0) -> tuple[DemoMeta, list[DemoEpisode]]:
    """A LeRobotDataset recorded on a real arm -> demos for `task`. observation.state holds the arm's joint
    positions by name (`panda_joint1.pos` or `panda_joint1`) and the finger gap (m, `gripper.pos`); joint
    velocities (`<joint>.vel`) are used when present, else differentiated. The action's names say what it is:
    `<joint>.pos` absolute joint position targets (LeRobot's convention for position-controlled arms),
    `<joint>.delta` per-step target changes (rad); `gripper.pos` the commanded finger gap. The goal comes from
    observation.environment_state (`goal.x/y/z`) or rec.goal; camera frames from the first video feature.
    Frames map 1:1 to control ticks, so the dataset's fps must be the task's control rate.
    obs "" picks state+pixels, state or pixels from what the dataset holds."""
    from robot_rl.demos import RecordingConfig
    from robot_rl.envs import make_env
    from robot_rl.lerobot_dataset import ACTION, INFO, STATE, read_lerobot

    rec = rec or RecordingConfig()
    where = Path(path) / INFO
    data = read_lerobot(path, max_episodes)
    probe, info = make_env(task, "state", render_size=render_size, action="joint")   # joint-target deltas
    probe.close()
    if info.obs_layout is None:
        raise RecordingError(f"task={task!r}: LeRobot datasets convert for the sim/ arm tasks only")
    if abs(data.fps - info.control_hz) > 1e-9:
        raise RecordingError(f"{where}: field 'fps' is {data.fps}; task {task!r} runs at {info.control_hz:g} Hz "
                             f"(one frame per control step; record or resample at {info.control_hz:g} fps)")
    if STATE not in data.info["features"]:
        raise RecordingError(f"{where}: feature {STATE!r} missing; it holds {sorted(data.info['features'])}")
    env_names = data.env_state_names
    goal_index = _named(env_names, ["goal.x", "goal.y", "goal.z"], "")
    has_goal = goal_index is not None or len(rec.goal) == 3
    needs = {name for name, _ in info.obs_layout}
    can_state = has_goal or "goal_pos" not in needs
    can_state = can_state and "object_pos" not in needs       # no object pose convention in LeRobot datasets
    if not obs:
        obs = "+".join(k for k, ok in (("state", can_state), ("pixels", data.camera is not None)) if ok)
        if not obs:
            raise RecordingError(f"{where}: task {task!r} needs {sorted(needs & {'goal_pos', 'object_pos'})} in "
                                 f"the state and the dataset has no video feature; pass rec.goal=[x,y,z]")
    env, info = make_env(task, obs, render_size=render_size, action="joint")
    base = env.unwrapped
    robot = base.robot
    arm = list(robot.arm_joints)
    try:
        q_at = _named(data.state_names, arm, ".pos")
        if q_at is None or len(data.state_names) < len(arm) + 1:
            raise RecordingError(f"{where}: field 'features.{STATE}.names' is {data.state_names}; expected the "
                                 f"{len(arm)} arm joints {arm} (as '<joint>.pos') and the finger gap "
                                 f"(one of {list(GRIPPER_NAMES)})")
        grip_at = next((data.state_names.index(g) for g in GRIPPER_NAMES if g in data.state_names), None)
        if grip_at is None:
            raise RecordingError(f"{where}: field 'features.{STATE}.names' has no finger gap (one of "
                                 f"{list(GRIPPER_NAMES)}, m)")
        qd_at = _named(data.state_names, arm, ".vel") if all(f"{j}.vel" in data.state_names for j in arm) else None
        names = data.action_names
        absolute, delta = _named(names, arm, ".pos"), [names.index(f"{j}.delta") if f"{j}.delta" in names else None
                                                      for j in arm]
        delta = None if any(i is None for i in delta) else delta
        if absolute is None and delta is None:
            raise RecordingError(f"{where}: field 'features.{ACTION}.names' is {names}; expected joint position "
                                 f"targets '<joint>.pos' or deltas '<joint>.delta' for {arm}")
        gap_at = next((names.index(g) for g in GRIPPER_NAMES if g in names), None)
        episodes = []
        for e, ep in enumerate(data.episodes):
            label = f"{path} (episode {e})"
            if len(ep.action) < 2:
                raise RecordingError(f"{label}: {len(ep.action)} frame(s); expected at least 2")
            q = ep.state[:, q_at].astype(np.float64)
            w = ep.state[:, grip_at].astype(np.float64)
            qd = ep.state[:, qd_at].astype(np.float64) if qd_at else np.gradient(q, 1.0 / data.fps, axis=0)
            act = ep.action[:-1].astype(np.float64)   # the last frame's action leads past the recording
            targets = act[:, absolute] if absolute is not None else q[:1] + np.cumsum(act[:, delta], axis=0)
            gap = act[:, gap_at] if gap_at is not None else None
            goal = ep.env_state[0, goal_index].astype(np.float64) if goal_index is not None else _config_goal(rec)
            images = list(ep.images) if "pixels" in obs else None
            episodes.append(episode_from_trajectory(label, base, info, obs, q, qd, w, targets, gap, goal, None,
                                                    images, rec.success_steps))
    finally:
        env.close()
    keys = [k for k in ("state", "pixels") if getattr(episodes[0], k) is not None]
    meta = DemoMeta(task=task, obs_keys=keys, state_dim=sum(s for _, s in info.obs_layout) if "state" in keys
                    else None, pixel_shape=list(info.obs_spec["pixels"][0]) if "pixels" in keys else None,
                    action_dim=info.action_dim, control_hz=float(info.control_hz), joint_names=info.joint_names,
                    source=f"lerobot:{path}", obs_layout=[list(x) for x in info.obs_layout] if "state" in keys
                    else None)
    return meta, episodes
