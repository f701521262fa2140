"""The `cameras:` section of a robot config YAML (sim/robots/<name>.yaml): where each camera sits and how it
projects. Written by calibration (camera_intrinsics, hand_eye), read by whoever needs a camera's pose.

    cameras:
    - name: wrist
      parent: ee_site          # frame the pose is given in: 'world', or a site/body of the robot's MJCF
      parent_type: site        # world | site | body
      pos: [0.05, 0.0, 0.04]   # camera optical frame origin in the parent frame, m
      quat: [1.0, 0.0, 0.0, 0.0]  # optical frame orientation (w, x, y, z); optical = x right, y down, z forward
      intrinsics: {width: 640, height: 480, fx: 615.0, fy: 615.0, cx: 320.0, cy: 240.0,
                   distortion_model: plumb_bob, d: [0.0, 0.0, 0.0, 0.0, 0.0]}
      calibration: {...}       # optional provenance: method, samples, residuals, source

Writing replaces only the `cameras:` block of the file (other keys and their comments stay as they are), one
entry per name, atomically (temp file in the same folder + os.replace).
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

PARENT_TYPES = ("world", "site", "body")
DISTORTION_MODELS = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}


class CameraDescriptionError(ValueError):
    pass


@dataclass
class CameraIntrinsics:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = "plumb_bob"
    d: list[float] = field(default_factory=lambda: [0.0] * 5)

    @property
    def camera_matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def dist_coeffs(self) -> np.ndarray:
        """OpenCV's distortion vector (plumb_bob and rational_polynomial are OpenCV's own order)."""
        return np.asarray(self.d, dtype=float)

    def to_dict(self) -> dict[str, Any]:
        return {"width": int(self.width), "height": int(self.height), "fx": float(self.fx), "fy": float(self.fy),
                "cx": float(self.cx), "cy": float(self.cy), "distortion_model": self.distortion_model,
                "d": [float(v) for v in self.d]}

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> "CameraIntrinsics":
        if not isinstance(raw, dict):
            raise CameraDescriptionError(f"{where}: expected a mapping with width, height, fx, fy, cx, cy, "
                                         f"distortion_model, d")
        values = {}
        for key in ("width", "height", "fx", "fy", "cx", "cy"):
            value = raw.get(key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value) or value <= 0:
                raise CameraDescriptionError(f"{where}.{key}: expected a positive number, got {value!r}")
            values[key] = int(value) if key in ("width", "height") else float(value)
        model = raw.get("distortion_model", "plumb_bob")
        if model not in DISTORTION_MODELS:
            raise CameraDescriptionError(f"{where}.distortion_model: expected one of {sorted(DISTORTION_MODELS)}, "
                                         f"got {model!r}")
        d = raw.get("d", [0.0] * DISTORTION_MODELS[model])
        if (not isinstance(d, list) or len(d) != DISTORTION_MODELS[model]
                or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in d)):
            raise CameraDescriptionError(f"{where}.d: expected {DISTORTION_MODELS[model]} numbers for {model}, "
                                         f"got {d!r}")
        return cls(distortion_model=model, d=[float(v) for v in d], **values)


@dataclass
class CameraDescription:
    name: str
    parent: str
    parent_type: str
    pos: np.ndarray                     # (3,) m
    quat: np.ndarray                    # (4,) w, x, y, z
    intrinsics: CameraIntrinsics | None = None
    calibration: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "parent": self.parent, "parent_type": self.parent_type,
                               "pos": [round(float(v), 7) for v in self.pos],
                               "quat": [round(float(v), 8) for v in self.quat]}
        if self.intrinsics is not None:
            out["intrinsics"] = self.intrinsics.to_dict()
        if self.calibration:
            out["calibration"] = self.calibration
        return out

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> "CameraDescription":
        if not isinstance(raw, dict):
            raise CameraDescriptionError(f"{where}: expected a mapping")
        name = raw.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", name):
            raise CameraDescriptionError(f"{where}.name: expected an identifier, got {name!r}")
        where = f"{where} ({name})"
        parent_type = raw.get("parent_type", "world" if raw.get("parent") == "world" else None)
        if parent_type not in PARENT_TYPES:
            raise CameraDescriptionError(f"{where}.parent_type: expected one of {PARENT_TYPES}, got {parent_type!r}")
        parent = raw.get("parent")
        if not isinstance(parent, str) or not parent or (parent_type == "world") != (parent == "world"):
            raise CameraDescriptionError(f"{where}.parent: expected 'world' (parent_type world) or a {parent_type} "
                                         f"name, got {parent!r}")
        pos = _vector(raw.get("pos"), 3, f"{where}.pos")
        quat = _vector(raw.get("quat"), 4, f"{where}.quat")
        if abs(np.linalg.norm(quat) - 1.0) > 1e-3:
            raise CameraDescriptionError(f"{where}.quat: expected a unit quaternion (w, x, y, z), norm is "
                                         f"{np.linalg.norm(quat):.4f}")
        intrinsics = raw.get("intrinsics")
        calibration = raw.get("calibration")
        if calibration is not None and not isinstance(calibration, dict):
            raise CameraDescriptionError(f"{where}.calibration: expected a mapping")
        return cls(name=name, parent=parent, parent_type=parent_type, pos=pos, quat=quat / np.linalg.norm(quat),
                   intrinsics=None if intrinsics is None else CameraIntrinsics.from_dict(intrinsics,
                                                                                         f"{where}.intrinsics"),
                   calibration=calibration)


def _vector(value: Any, size: int, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.shape != (size,) or not np.all(np.isfinite(arr)):
        raise CameraDescriptionError(f"{where}: expected {size} finite numbers, got {value!r}")
    return arr


def load_cameras(robot_yaml: str | Path) -> dict[str, CameraDescription]:
    """The cameras of a robot config file, by name ({} when it has no `cameras:` section)."""
    path = Path(robot_yaml)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise CameraDescriptionError(f"{path}: cannot read robot config: {error}") from error
    section = raw.get("cameras", []) if isinstance(raw, dict) else None
    if not isinstance(section, list):
        raise CameraDescriptionError(f"{path}: field 'cameras': expected a list of camera entries")
    cameras = {}
    for i, entry in enumerate(section):
        camera = CameraDescription.from_dict(entry, f"{path}: cameras[{i}]")
        if camera.name in cameras:
            raise CameraDescriptionError(f"{path}: cameras[{i}]: duplicate camera name {camera.name!r}")
        cameras[camera.name] = camera
    return cameras


def _without_section(text: str, key: str) -> str:
    """`text` without the top-level block `key:` (its line and the indented, list or comment lines after it)."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.strip() and not line[0].isspace() and line[0] not in "#-":  # a top-level key starts here
            skipping = line.startswith(f"{key}:")
        if not skipping:
            out.append(line)
    return "".join(out)


def write_camera(robot_yaml: str | Path, camera: CameraDescription) -> None:
    """Add or replace camera `camera.name` in the robot config's `cameras:` section, atomically."""
    path = Path(robot_yaml)
    cameras = load_cameras(path)
    CameraDescription.from_dict(camera.to_dict(), f"camera {camera.name!r} to write")  # validate before writing
    cameras[camera.name] = camera
    text = _without_section(path.read_text(), "cameras").rstrip("\n") + "\n"
    block = yaml.safe_dump({"cameras": [c.to_dict() for c in cameras.values()]}, sort_keys=False,
                           default_flow_style=None, width=120)
    new_text = text + block
    check = yaml.safe_load(new_text)
    original = yaml.safe_load(path.read_text()) or {}
    if {k: v for k, v in check.items() if k != "cameras"} != {k: v for k, v in original.items() if k != "cameras"}:
        raise CameraDescriptionError(f"{path}: could not replace the cameras section without touching other keys")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new_text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
