"""/joint_states as a policy needs them, from whatever arm publishes them.

- Names: the robot may call the bundle's joints differently (a Franka FR3 publishes ``fr3_joint1..7`` where a
  bundle trained on the Panda says ``panda_joint1..7``): `hardware_names` are the robot's names of the bundle's
  joints, in the bundle's order; the same names, in that order, are what commands go out under.
- Velocities: ros2_control's joint_state_broadcaster fills velocity interfaces a joint does not have with NaN,
  and some drivers send no velocity at all. A non-finite or missing velocity means unknown, estimated by finite
  differences of the positions over the message stamps.
- The command's joint order must be the controller's: forward_command_controller takes a bare array in the order
  of its `joints` parameter. `controller_joints` reads that parameter from the controllers YAML that
  ros2_control loads (both transports). Reading it from the running controller needs the ROS 2 parameter
  service (rcl_interfaces/srv/GetParameters), which the DDS transport does not speak and the node interface
  does not expose, so a live check is not done on either transport.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hardware.messages import JointState, joint_state_arrays, ns_from_time
from hardware.transport.base import load_params_file


def parse_names(text: str) -> tuple[str, ...]:
    """'fr3_joint1, fr3_joint2' -> ('fr3_joint1', 'fr3_joint2'); a comma-separated string because an empty
    string list has no type in rclpy (it would be declared a byte array)."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def hardware_joint_names(text: str, bundle_names: Sequence[str], where: str) -> tuple[str, ...]:
    names = parse_names(text) or tuple(bundle_names)
    if len(names) != len(bundle_names) or len(set(names)) != len(names):
        raise ValueError(f"{where}: expected {len(bundle_names)} distinct names, the robot's names of the bundle's "
                         f"joints {list(bundle_names)} in that order; got {list(names)}")
    return names


def controller_joints(path: str, controller: str) -> list[str]:
    """The `joints` parameter of `controller` in a ros2_control controllers YAML."""
    params = load_params_file(path, controller)
    joints = params.get("joints")
    if not isinstance(joints, list) or not joints or not all(isinstance(j, str) for j in joints):
        raise ValueError(f"{path}: {controller}.ros__parameters.joints: expected a list of joint names, got {joints!r}")
    return joints


def check_command_order(names: Sequence[str], path: str, controller: str) -> None:
    joints = controller_joints(path, controller)
    if list(joints) != list(names):
        raise ValueError(f"{path}: controller {controller} takes joints {joints}, but the commands go out in the "
                         f"order {list(names)} (set hardware_joint_names to the robot's names in the bundle's order)")


class JointStateInput:
    def __init__(self, hardware_names: Sequence[str]):
        self.names = tuple(hardware_names)
        self.estimated = 0          # messages with at least one velocity estimated
        self._last: tuple[np.ndarray, int, np.ndarray] | None = None   # q, stamp, velocity estimate

    def read(self, msg: JointState) -> tuple[np.ndarray, np.ndarray, int]:
        """(q, dq, stamp_ns) in the bundle's order; ValueError when the message lacks joints or is inconsistent."""
        q, dq, _ = joint_state_arrays(msg, self.names)
        stamp = ns_from_time(msg.header.stamp)
        estimate = self._estimate(q, stamp)
        self._last = (q, stamp, estimate)
        unknown = np.ones(len(q), bool) if dq is None else ~np.isfinite(dq)
        if unknown.any():
            self.estimated += 1
            dq = np.where(unknown, estimate, 0.0 if dq is None else dq)
        return q, dq, stamp

    def _estimate(self, q: np.ndarray, stamp: int) -> np.ndarray:
        if self._last is None:
            return np.zeros(len(q))
        q_prev, stamp_prev, estimate = self._last
        if stamp <= stamp_prev:                     # a repeated or older stamp: nothing new to differentiate
            return estimate
        velocity = (q - q_prev) / ((stamp - stamp_prev) * 1e-9)
        return np.where(np.isfinite(velocity), velocity, 0.0)
