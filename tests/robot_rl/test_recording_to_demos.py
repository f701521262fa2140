"""Recording -> demonstrations on real rosbag2 MCAP files written with rosbags from a simulated expert episode
(MuJoCo): the converted actions reproduce the recorded joint targets, the state matches the simulator's, the
images are resized, replaying the actions in the simulator succeeds, and bad recordings get clear errors."""
from pathlib import Path

import numpy as np
import pytest

from robot_rl.demos import RecordingConfig
from robot_rl.recording_to_demos import RecordingError, convert_recording

TASK = "panda-pick-sparse"
DT = 50_000_000  # 20 Hz in ns
T0 = 1_700_000_000_000_000_000


def _header(types, ns):
    stamp = types["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id="base")


def record_expert_episode(path: Path, seed=4, image_size=48, jitter=True, drop_finger=False, with_images=True,
                          command_extra=0):
    """Run the scripted expert in MuJoCo and write what a robot would record: joint states at each control tick,
    the forward_command_controller's targets (7 arm + gripper gap) 1-20 ms after each tick, camera images
    and the object pose. Returns the episode as the simulator saw it."""
    import gymnasium as gym
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    import sim
    from sim.experts import Expert

    env = gym.make(sim.env_id("pick", sparse=True), obs_type="state+pixels", render_size=image_size,
                   action="joint")   # a recording's actions are joint-target deltas
    base = env.unwrapped
    robot = base.robot
    expert = Expert(env)
    obs, _ = env.reset(seed=seed)
    store = get_typestore(Stores.ROS2_HUMBLE)
    T = store.types
    rng = np.random.default_rng(0)
    sim_episode = {"state": [obs["state"]], "targets": [], "actions": [], "success": [], "goal": base.goal.copy(),
                   "q0": base.physics.arm_qpos().copy()}
    names = [*robot.arm_joints, *robot.gripper_joints[: 1 if drop_finger else 2]]
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        js = writer.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=store)
        cmd = writer.add_connection("/arm_controller/commands", "std_msgs/msg/Float64MultiArray", typestore=store)
        cam = writer.add_connection("/camera/color/image_raw", "sensor_msgs/msg/Image", typestore=store)
        pose = writer.add_connection("/object_pose", "geometry_msgs/msg/PoseStamped", typestore=store)

        def write_observation(k):
            t = T0 + k * DT
            p = base.physics
            width = p.gripper_width()
            msg = T["sensor_msgs/msg/JointState"](header=_header(T, t), name=names,
                                                  position=np.r_[p.arm_qpos(), [width / 2] * (len(names) - 7)],
                                                  velocity=np.r_[p.arm_qvel(), [0.0] * (len(names) - 7)],
                                                  effort=np.zeros(0))
            writer.write(js, t, store.serialize_cdr(msg, "sensor_msgs/msg/JointState"))
            o = p.object_pose()
            pt = T["geometry_msgs/msg/Point"](x=o[0], y=o[1], z=o[2])
            q = T["geometry_msgs/msg/Quaternion"](x=o[4], y=o[5], z=o[6], w=o[3])
            msg = T["geometry_msgs/msg/PoseStamped"](header=_header(T, t), pose=T["geometry_msgs/msg/Pose"](
                position=pt, orientation=q))
            writer.write(pose, t, store.serialize_cdr(msg, "geometry_msgs/msg/PoseStamped"))
            if with_images:
                image = base.render()
                msg = T["sensor_msgs/msg/Image"](header=_header(T, t), height=image.shape[0], width=image.shape[1],
                                                 encoding="bgr8", is_bigendian=0, step=image.shape[1] * 3,
                                                 data=np.ascontiguousarray(image[..., ::-1]).reshape(-1))
                writer.write(cam, t, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))

        write_observation(0)
        for k in range(base.episode_steps):
            action = expert(env)
            obs, _, _, _, info = env.step(action)
            targets = np.r_[base.last_joint_targets, base.last_gripper_target, [0.0] * command_extra]
            t_cmd = T0 + k * DT + (int(rng.integers(1, 20)) * 1_000_000 if jitter else 1_000_000)
            layout = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
            msg = T["std_msgs/msg/Float64MultiArray"](layout=layout, data=targets)
            writer.write(cmd, t_cmd, store.serialize_cdr(msg, "std_msgs/msg/Float64MultiArray"))
            write_observation(k + 1)
            sim_episode["state"].append(obs["state"])
            sim_episode["targets"].append(targets[:7])
            sim_episode["actions"].append(action)
            sim_episode["success"].append(info["success"])
    env.close()
    return {k: np.asarray(v) if isinstance(v, list) else v for k, v in sim_episode.items()}


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "pick_demo"
    return path, record_expert_episode(path)


def rec_config(episode, **kw):
    return RecordingConfig(object_topic="/object_pose", goal=list(map(float, episode["goal"])), **kw)


def test_converted_actions_reproduce_the_joint_targets(recording):
    from sim.action_mapping import action_to_targets
    from sim.robot import load_robot

    path, episode = recording
    assert (path / "metadata.yaml").exists() and list(path.glob("*.mcap"))  # a real rosbag2 MCAP folder
    meta, (demo,) = convert_recording(str(path), TASK, "state+pixels", 24, rec_config(episode))
    assert meta.source == f"recording:{path}" and meta.obs_keys == ["state", "pixels"]
    assert len(demo) == 80 and demo.action.shape == (80, 8)
    robot = load_robot("panda")
    targets = episode["q0"]
    for k in range(80):
        targets, gap = action_to_targets(demo.action[k], targets, robot.lower, robot.upper, robot.max_joint_step,
                                         robot.gripper_max_width)
        np.testing.assert_allclose(targets, episode["targets"][k], atol=1e-6)
    # the expert's own actions come back (the arm part exactly, the gripper where it is not past +-1)
    np.testing.assert_allclose(demo.action[:, :7], episode["actions"][:, :7], atol=1e-5)
    np.testing.assert_allclose(demo.action[:, 7], np.clip(episode["actions"][:, 7], -1, 1), atol=1e-5)


def test_converted_state_success_and_pixels_match_the_simulator(recording):
    import cv2

    path, episode = recording
    meta, (demo,) = convert_recording(str(path), TASK, "state+pixels", 24, rec_config(episode))
    assert meta.state_dim == episode["state"].shape[1]
    # joint positions, velocities, gripper, object and goal: float32 exact. The end-effector terms differ by up
    # to ~0.5 mm: the simulator reads its site position after mj_step, i.e. one 2 ms physics substep before the
    # joint positions it reports, while the converter takes FK of those joint positions.
    ee_cols = np.zeros(demo.state.shape[1], bool)
    start = 0
    for name, size in meta.obs_layout:
        ee_cols[start:start + size] = name in ("ee_pos", "ee_to_object", "ee_to_goal")
        start += size
    np.testing.assert_allclose(demo.state[:, ~ee_cols], episode["state"][:, ~ee_cols], atol=2e-5)
    np.testing.assert_allclose(demo.state[:, ee_cols], episode["state"][:, ee_cols], atol=1e-3)
    np.testing.assert_array_equal(demo.success, episode["success"])
    assert demo.success[-1] and demo.reward[-1] == 1.0
    assert demo.pixels.shape == (81, 3, 24, 24) and demo.pixels.dtype == np.uint8
    # the BGR camera bytes came back as RGB, resized with area interpolation
    import gymnasium as gym

    import sim

    env = gym.make(sim.env_id("pick", sparse=True), obs_type="pixels", render_size=48)
    first, _ = env.reset(seed=4)
    env.close()
    expected = cv2.resize(first.transpose(1, 2, 0), (24, 24), interpolation=cv2.INTER_AREA).transpose(2, 0, 1)
    np.testing.assert_array_equal(demo.pixels[0], expected)


def test_replaying_converted_actions_in_sim_succeeds(recording):
    import gymnasium as gym

    import sim

    path, episode = recording
    _, (demo,) = convert_recording(str(path), TASK, "state", 64, rec_config(episode))
    env = gym.make(sim.env_id("pick", sparse=True), action="joint")
    env.reset(seed=4)
    for a in demo.action:
        info = env.step(a)[4]
    env.close()
    assert info["success"]


def test_round_trip_through_robot_rl_demos(recording, tmp_path):
    from robot_rl.cli import main
    from robot_rl.demo_dataset import load_demos

    path, episode = recording
    goal = ",".join(f"{g:.6f}" for g in episode["goal"])
    out = tmp_path / "teleop"
    assert main(["demos", f"recording={path}", f"task={TASK}", f"out={out}", "obs=state+pixels", "render_size=40",
                 "rec.object_topic=/object_pose", f"rec.goal=[{goal}]"]) == 0
    meta, eps = load_demos(out)
    assert meta.pixel_shape == [3, 40, 40] and len(eps) == 1 and eps[0].success[-1]


def test_recording_converts_to_a_lerobot_dataset(recording, tmp_path):
    from robot_rl.cli import main
    from robot_rl.demo_dataset import load_demos

    path, episode = recording
    goal = ",".join(f"{g:.6f}" for g in episode["goal"])
    out = tmp_path / "teleop_lerobot"
    assert main(["demos", f"recording={path}", f"task={TASK}", f"out={out}", "obs=state+pixels", "render_size=64",
                 "rec.object_topic=/object_pose", f"rec.goal=[{goal}]", "format=lerobot"]) == 0
    assert (out / "meta/info.json").is_file() and list((out / "videos").rglob("*.mp4"))
    meta, (demo,) = load_demos(out)
    _, (direct,) = convert_recording(str(path), TASK, "state+pixels", 64, rec_config(episode))
    assert meta.source == f"recording:{path}" and demo.success[-1]
    np.testing.assert_array_equal(demo.action, direct.action)
    np.testing.assert_allclose(demo.state, direct.state, atol=1e-5)   # the goal went through "%.6f" on the CLI
    assert np.abs(demo.pixels.astype(int) - direct.pixels).mean() < 4.0


def test_pixels_only_without_object_pose(recording):
    path, _ = recording
    meta, (demo,) = convert_recording(str(path), TASK, "pixels", 24, RecordingConfig(success_steps=3))
    assert meta.obs_keys == ["pixels"] and demo.state is None
    assert demo.success.tolist() == [False] * 77 + [True] * 3


def test_bad_recordings_get_clear_errors(recording, tmp_path):
    path, episode = recording
    with pytest.raises(RecordingError, match=r"needs \['goal_pos', 'object_pos'\].*rec.goal"):
        convert_recording(str(path), TASK, "state", 64, RecordingConfig())
    with pytest.raises(RecordingError, match=r"topic '/arm/commands' missing; recorded topics: \["):
        convert_recording(str(path), TASK, "state", 64, rec_config(episode, command_topic="/arm/commands"))
    with pytest.raises(RecordingError, match=r"'/object_pose' has type geometry_msgs/msg/PoseStamped; expected"):
        convert_recording(str(path), TASK, "state", 64, RecordingConfig(command_topic="/object_pose"))
    with pytest.raises(RecordingError, match=r"rec.goal=\[1.0\]: expected 3 numbers"):
        convert_recording(str(path), TASK, "state", 64, RecordingConfig(object_topic="/object_pose", goal=[1.0]))
    with pytest.raises(RecordingError, match="not a readable rosbag2 recording"):
        (tmp_path / "junk").mkdir()
        convert_recording(str(tmp_path / "junk"), TASK, "state", 64, rec_config(episode))
    bad = tmp_path / "no_finger"
    record_expert_episode(bad, drop_finger=True, with_images=False)
    with pytest.raises(RecordingError, match=r"/joint_states message 0 lacks joint\(s\) \['panda_finger_joint2'\]"):
        convert_recording(str(bad), TASK, "state", 64, rec_config(episode))
    bad = tmp_path / "no_images_long_commands"
    record_expert_episode(bad, with_images=False, command_extra=1)
    with pytest.raises(RecordingError, match=r"messages have \[9\] values; expected 7 arm joint targets"):
        convert_recording(str(bad), TASK, "state", 64, rec_config(episode))
    with pytest.raises(RecordingError, match=r"needs camera images on '/camera/color/image_raw'; none recorded"):
        convert_recording(str(bad), TASK, "pixels", 64, RecordingConfig())
