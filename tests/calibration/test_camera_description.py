"""The robot config's cameras: section: written atomically next to the other keys (comments kept), read back,
validated with errors naming the file and field; sim's robot loader still reads the file."""
from pathlib import Path

import numpy as np
import pytest
import yaml

from calibration.camera_description import (CameraDescription, CameraDescriptionError, CameraIntrinsics,
                                            load_cameras, write_camera)
from sim.robot import ROBOTS_DIR, load_robot


@pytest.fixture
def robot_yaml(tmp_path) -> Path:
    """A copy of panda.yaml whose description path still resolves."""
    text = (ROBOTS_DIR / "panda.yaml").read_text()
    description = (ROBOTS_DIR / yaml.safe_load(text)["description"]).resolve()
    path = tmp_path / "panda.yaml"
    path.write_text(text.replace(yaml.safe_load(text)["description"], str(description)))
    return path


def wrist(x=0.05):
    return CameraDescription("wrist", "ee_site", "site", np.array([x, 0.0, 0.04]), np.array([0.0, 1.0, 0.0, 0.0]),
                             CameraIntrinsics(640, 480, 600.0, 600.0, 320.0, 240.0), {"hand_eye": {"rms_px": 0.2}})


def test_write_read_replace_and_keep_the_rest(robot_yaml):
    before = robot_yaml.read_text()
    write_camera(robot_yaml, wrist())
    fixed = CameraDescription("front", "world", "world", np.array([1.2, 0.0, 0.8]), np.array([0.5, 0.5, -0.5, -0.5]))
    write_camera(robot_yaml, fixed)
    write_camera(robot_yaml, wrist(x=0.07))  # replaces, keeps order and the other camera
    text = robot_yaml.read_text()
    assert text.startswith(before.rstrip("\n"))  # other keys and their comments untouched
    assert text.count("cameras:") == 1
    cameras = load_cameras(robot_yaml)
    assert list(cameras) == ["wrist", "front"]
    assert cameras["wrist"].pos[0] == pytest.approx(0.07)
    assert cameras["wrist"].intrinsics.fx == 600.0 and cameras["wrist"].calibration["hand_eye"]["rms_px"] == 0.2
    np.testing.assert_allclose(cameras["front"].quat, [0.5, 0.5, -0.5, -0.5])
    assert load_robot(robot_yaml).name == "panda"
    assert not [p for p in robot_yaml.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("entry, message", [
    ({"name": "c", "parent": "world", "pos": [0, 0], "quat": [1, 0, 0, 0]}, r"cameras\[0\] \(c\).pos: expected 3"),
    ({"name": "c", "parent": "world", "pos": [0, 0, 0], "quat": [2, 0, 0, 0]}, "unit quaternion"),
    ({"name": "c", "parent": "hand", "parent_type": "joint", "pos": [0, 0, 0], "quat": [1, 0, 0, 0]}, "parent_type"),
    ({"name": "c", "parent": "world", "pos": [0, 0, 0], "quat": [1, 0, 0, 0],
      "intrinsics": {"width": 640, "height": 480, "fx": -1, "fy": 1, "cx": 1, "cy": 1}}, r"intrinsics.fx"),
    ({"name": "c", "parent": "world", "pos": [0, 0, 0], "quat": [1, 0, 0, 0],
      "intrinsics": {"width": 640, "height": 480, "fx": 1, "fy": 1, "cx": 1, "cy": 1, "d": [0.1]}}, r"intrinsics.d"),
    ({"name": "9c", "parent": "world", "pos": [0, 0, 0], "quat": [1, 0, 0, 0]}, "name"),
])
def test_bad_entries_name_file_and_field(robot_yaml, entry, message):
    robot_yaml.write_text(robot_yaml.read_text() + yaml.safe_dump({"cameras": [entry]}))
    with pytest.raises(CameraDescriptionError, match=message) as info:
        load_cameras(robot_yaml)
    assert str(robot_yaml) in str(info.value)


def test_duplicate_names_and_non_list_section(robot_yaml):
    entry = {"name": "c", "parent": "world", "pos": [0, 0, 0], "quat": [1, 0, 0, 0]}
    original = robot_yaml.read_text()
    robot_yaml.write_text(original + yaml.safe_dump({"cameras": [entry, entry]}))
    with pytest.raises(CameraDescriptionError, match="duplicate camera name 'c'"):
        load_cameras(robot_yaml)
    robot_yaml.write_text(original + "cameras: {c: 1}\n")
    with pytest.raises(CameraDescriptionError, match="'cameras': expected a list"):
        load_cameras(robot_yaml)
    robot_yaml.write_text(original)
    assert load_cameras(robot_yaml) == {}
