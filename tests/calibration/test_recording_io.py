"""rosbag2 recordings (MCAP and sqlite3, written and read with rosbags) <-> joint time series, and clear errors
for recordings sysid cannot use."""
import numpy as np
import pytest

from calibration.recording_io import (COMMAND_TYPES, JOINT_STATE_TYPE, MULTIARRAY_TYPE, JointRecording,
                                      RecordingError, read_recording, write_recording)

JOINTS = ("j1", "j2", "j3")


def _recording(n=120, seed=0, topic="/arm_controller/commands"):
    rng = np.random.default_rng(seed)
    stamps = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 10_000_000
    return JointRecording(JOINTS, stamps, rng.normal(size=(n, 3)), rng.normal(size=(n, 3)), stamps[::5].copy(),
                          rng.normal(size=(len(stamps[::5]), 3)), topic, {"finger": np.full(n, 0.02)})


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("command_type", COMMAND_TYPES)
def test_round_trip_keeps_stamps_values_and_names(tmp_path, storage, command_type):
    rec = _recording()
    path = write_recording(tmp_path / "bag", rec, storage=storage, command_type=command_type)
    assert (path / "metadata.yaml").is_file()
    back = read_recording(path, JOINTS)
    np.testing.assert_array_equal(back.state_stamps, rec.state_stamps)
    np.testing.assert_array_equal(back.command_stamps, rec.command_stamps)
    np.testing.assert_allclose(back.position, rec.position)
    np.testing.assert_allclose(back.velocity, rec.velocity)
    np.testing.assert_allclose(back.command, rec.command)
    np.testing.assert_allclose(back.extra_positions["finger"], 0.02)
    assert back.command_topic == rec.command_topic


def test_joint_order_follows_the_requested_names(tmp_path):
    rec = _recording()
    path = write_recording(tmp_path / "bag", rec, command_type=COMMAND_TYPES[1])
    back = read_recording(path, ("j3", "j1", "j2"))
    np.testing.assert_allclose(back.position, rec.position[:, [2, 0, 1]])
    np.testing.assert_allclose(back.command, rec.command[:, [2, 0, 1]])


def test_writing_never_overwrites_and_leaves_no_temp_folder(tmp_path):
    path = write_recording(tmp_path / "bag", _recording())
    with pytest.raises(FileExistsError, match="already exists"):
        write_recording(path, _recording())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]


def _write_raw(path, topics):
    """A bag with arbitrary messages: topics = {topic: (msgtype, [(stamp, msg kwargs)])}."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for topic, (msgtype, messages) in topics.items():
            conn = writer.add_connection(topic, msgtype, typestore=store)
            for stamp, kwargs in messages:
                if msgtype == JOINT_STATE_TYPE:
                    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](
                        sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="")
                    msg = types[msgtype](header=header, effort=np.zeros(0), **kwargs)
                else:
                    layout = types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
                    msg = types[msgtype](layout=layout, **kwargs)
                writer.write(conn, stamp, store.serialize_cdr(msg, msgtype))
    return path


def _states(n=50, names=JOINTS, bad_at=None):
    out = []
    for i in range(n):
        pos = np.full(len(names), 0.1 * i)
        if i == bad_at:
            pos[1] = np.nan
        out.append((10**9 + i * 50_000_000, dict(name=list(names), position=pos, velocity=np.zeros(len(names)))))
    return out


def _commands(n=20, width=3, bad_at=None):
    out = []
    for i in range(n):
        data = np.full(width, 0.1 * i)
        if i == bad_at:
            data[0] = np.inf
        out.append((10**9 + i * 100_000_000, dict(data=data)))
    return out


def test_missing_joint_states_topic_names_it_and_lists_topics(tmp_path):
    bag = _write_raw(tmp_path / "b", {"/arm_controller/commands": (MULTIARRAY_TYPE, _commands())})
    with pytest.raises(RecordingError, match=r"'/joint_states' missing; recorded topics: \['/arm_controller/commands'\]"):
        read_recording(bag, JOINTS)


def test_missing_command_topic(tmp_path):
    bag = _write_raw(tmp_path / "b", {"/joint_states": (JOINT_STATE_TYPE, _states())})
    with pytest.raises(RecordingError, match="exactly one command topic"):
        read_recording(bag, JOINTS)
    with pytest.raises(RecordingError, match="command topic '/x/commands' missing"):
        read_recording(bag, JOINTS, command_topic="/x/commands")


def test_nan_position_names_topic_and_message(tmp_path):
    bag = _write_raw(tmp_path / "b", {"/joint_states": (JOINT_STATE_TYPE, _states(bad_at=7)),
                                      "/arm_controller/commands": (MULTIARRAY_TYPE, _commands())})
    with pytest.raises(RecordingError, match="/joint_states message 7 .* non-finite position"):
        read_recording(bag, JOINTS)


def test_non_finite_command(tmp_path):
    bag = _write_raw(tmp_path / "b", {"/joint_states": (JOINT_STATE_TYPE, _states()),
                                      "/arm_controller/commands": (MULTIARRAY_TYPE, _commands(bad_at=3))})
    with pytest.raises(RecordingError, match="/arm_controller/commands message 3 .* non-finite"):
        read_recording(bag, JOINTS)


def test_wrong_joint_names(tmp_path):
    bag = _write_raw(tmp_path / "b", {"/joint_states": (JOINT_STATE_TYPE, _states(names=("j1", "jX", "j3"))),
                                      "/arm_controller/commands": (MULTIARRAY_TYPE, _commands())})
    with pytest.raises(RecordingError, match=r"lacks joint\(s\) \['j2'\].*expected \['j1', 'j2', 'j3'\]"):
        read_recording(bag, JOINTS)


def test_command_width_must_match_joints(tmp_path):
    bag = _write_raw(tmp_path / "b", {"/joint_states": (JOINT_STATE_TYPE, _states()),
                                      "/arm_controller/commands": (MULTIARRAY_TYPE, _commands(width=2))})
    with pytest.raises(RecordingError, match="has 2 values, expected 3"):
        read_recording(bag, JOINTS)


def test_too_short(tmp_path):
    bag = _write_raw(tmp_path / "b", {"/joint_states": (JOINT_STATE_TYPE, _states(n=10)),
                                      "/arm_controller/commands": (MULTIARRAY_TYPE, _commands())})
    with pytest.raises(RecordingError, match="too short: 10 joint states over 0.450 s"):
        read_recording(bag, JOINTS)


def test_not_a_bag(tmp_path):
    with pytest.raises(RecordingError, match="recording not found"):
        read_recording(tmp_path / "nothing", JOINTS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordingError, match="not a readable rosbag2 recording"):
        read_recording(tmp_path / "empty", JOINTS)


def test_out_of_order_messages_are_sorted(tmp_path):
    states = _states()
    states[3], states[4] = states[4], states[3]
    bag = _write_raw(tmp_path / "b", {"/joint_states": (JOINT_STATE_TYPE, states),
                                      "/arm_controller/commands": (MULTIARRAY_TYPE, _commands())})
    rec = read_recording(bag, JOINTS)
    assert np.all(np.diff(rec.state_stamps) > 0)
    np.testing.assert_allclose(rec.position[:, 0], 0.1 * np.arange(50))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_reads_bags_written_by_the_hardware_recorder(tmp_path, storage):
    """hardware/'s BagWriter (what the recorder node uses) and this reader agree on the format."""
    from hardware.messages import float64_multi_array, joint_state, joint_trajectory
    from hardware.recording import write_bag

    messages = []
    for i in range(60):
        stamp = 5 * 10**9 + i * 20_000_000
        messages.append(("/joint_states", stamp + 1000,
                         joint_state(["j2", "j1", "j3", "finger"], [0.2 * i, 0.1 * i, 0.3 * i, 0.04],
                                     [2.0, 1.0, 3.0, 0.0], stamp_ns=stamp)))
        if i % 3 == 0:
            messages.append(("/forward_position_controller/commands", stamp + 500,
                             float64_multi_array([0.1 * i, 0.2 * i, 0.3 * i])))
            messages.append(("/arm_controller/joint_trajectory", stamp + 700,
                             joint_trajectory(["j3", "j2", "j1"], [3.0 * i, 2.0 * i, 1.0 * i], 0.0)))
    write_bag(tmp_path / "bag", messages, storage=storage)
    rec = read_recording(tmp_path / "bag", JOINTS, command_topic="/forward_position_controller/commands")
    np.testing.assert_array_equal(rec.state_stamps, 5 * 10**9 + np.arange(60) * 20_000_000)   # header stamps
    np.testing.assert_allclose(rec.position[:, 0], 0.1 * np.arange(60))
    np.testing.assert_allclose(rec.velocity[0], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(rec.extra_positions["finger"], 0.04)
    np.testing.assert_array_equal(rec.command_stamps, 5 * 10**9 + np.arange(0, 60, 3) * 20_000_000 + 500)
    np.testing.assert_allclose(rec.command[:, 2], 0.3 * np.arange(0, 60, 3))
    traj = read_recording(tmp_path / "bag", JOINTS, command_topic="/arm_controller/joint_trajectory")
    np.testing.assert_allclose(traj.command, np.outer(np.arange(0, 60, 3), [1.0, 2.0, 3.0]))
    with pytest.raises(RecordingError, match="exactly one command topic"):
        read_recording(tmp_path / "bag", JOINTS)
