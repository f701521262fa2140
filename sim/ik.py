"""Engine-independent inverse kinematics: damped least squares on a Jacobian taken by finite differences of a
forward-kinematics function (`backend.forward_kinematics`), so MuJoCo and PyBullet are driven by the same code.

Damped least squares: dq = J^T (J J^T + lambda^2 I)^-1 e (Wampler 1986; Buss, "Introduction to inverse
kinematics with Jacobian transpose, pseudoinverse and damped least squares methods", 2004), with a null-space
pull towards a rest posture.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

FD_STEP = 1e-4            # rad, finite-difference step
DLS_DAMPING = 0.05

ForwardKinematics = Callable[[np.ndarray], np.ndarray]   # q -> (7,) pos + quat (w, x, y, z)


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def rotation_vector(r: np.ndarray) -> np.ndarray:
    """Axis * angle of a rotation matrix (log map)."""
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if angle < 1e-6:
        return 0.5 * axis
    if np.pi - angle < 1e-4:   # near pi the antisymmetric part vanishes: axis from the diagonal
        axis = np.sqrt(np.clip((np.diag(r) + 1.0) / 2.0, 0.0, None))
        k = int(np.argmax(axis))
        axis = np.sign(np.where(np.arange(3) == k, 1.0, r[k] + r[:, k])) * axis
        return angle * axis / np.linalg.norm(axis)
    return angle * axis / (2.0 * np.sin(angle))


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def clip_norm(v: np.ndarray, limit: float) -> np.ndarray:
    n = np.linalg.norm(v)
    return v if n <= limit else v * (limit / n)


def quats_to_mats(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (w, x, y, z) -> (..., 3, 3) rotation matrices."""
    q = np.asarray(q, float)
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
                     np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
                     np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], -2)


def jacobian(fk: ForwardKinematics, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pose at q, 3x3 rotation at q, 6xn Jacobian: linear rows, then angular rows in the world frame), by
    forward differences; the angular column is the axis of R(q + h e_i) R(q)^T from its antisymmetric part
    (exact to O(h^2), like the log map at this step size)."""
    pose = fk(q)
    poses = np.stack([fk(q + FD_STEP * e) for e in np.eye(q.shape[0])])
    rots = quats_to_mats(np.concatenate([pose[None, 3:], poses[:, 3:]]))
    rot, delta = rots[0], rots[1:] @ rots[0].T
    angular = 0.5 * np.stack([delta[:, 2, 1] - delta[:, 1, 2], delta[:, 0, 2] - delta[:, 2, 0],
                              delta[:, 1, 0] - delta[:, 0, 1]], axis=-1)
    jac = np.concatenate([(poses[:, :3] - pose[:3]).T, angular.T]) / FD_STEP
    return pose, rot, jac


def dls_step(fk: ForwardKinematics, q: np.ndarray, target_pos: np.ndarray, target_rot: np.ndarray,
             rest: np.ndarray, max_pos_step: float, max_rot_step: float, posture_gain: float,
             gain: float = 1.0) -> np.ndarray:
    """Joint change that moves the tool `gain` of the way towards (target_pos, target_rot), by at most the
    given steps."""
    pose, rot, jac = jacobian(fk, q)
    error = np.concatenate([clip_norm(gain * (target_pos - pose[:3]), max_pos_step),
                            clip_norm(gain * rotation_vector(target_rot @ rot.T), max_rot_step)])
    jjt = jac @ jac.T + DLS_DAMPING ** 2 * np.eye(6)
    dq = jac.T @ np.linalg.solve(jjt, error)
    null = np.eye(q.shape[0]) - jac.T @ np.linalg.solve(jjt, jac)
    return dq + null @ (posture_gain * (rest - q))


def solve_ik(fk: ForwardKinematics, q0: np.ndarray, target_pos: np.ndarray, target_rot: np.ndarray,
             lower: np.ndarray, upper: np.ndarray, iterations: int = 200, tolerance: float = 1e-4) -> np.ndarray:
    """Joint angles within limits that put the tool at the target (iterated DLS from q0)."""
    q = np.asarray(q0, float).copy()
    for _ in range(iterations):
        q = np.clip(q + dls_step(fk, q, target_pos, target_rot, q0, 0.05, 0.2, 0.0), lower, upper)
        pose = fk(q)
        if (np.linalg.norm(pose[:3] - target_pos) < tolerance
                and np.linalg.norm(rotation_vector(target_rot @ quat_to_mat(pose[3:]).T)) < 10 * tolerance):
            break
    return q


def track_pose(fk: ForwardKinematics, q0: np.ndarray, target_pos: np.ndarray, target_rot: np.ndarray,
               rest: np.ndarray, lower: np.ndarray, upper: np.ndarray, iterations: int, damping: float,
               posture_gain: float) -> np.ndarray:
    """Joint angles within limits that move the tool from fk(q0) to the target, for one control step.

    A fixed number of damped least-squares iterations from q0 on the Jacobian at q0 (one control step moves the
    tool a few cm, over which the Jacobian barely changes; forward kinematics is re-evaluated every iteration, so
    the error still converges), each clipped to the joint limits. The first iteration also pulls towards `rest`
    in the Jacobian's null space so the redundant joint does not drift; the damped projector leaks a little into
    the tool's motion, which the later iterations take out again (a zero action then holds the tool still). No early stop: the robot computer's restatement,
    hardware/policy_io.py, then gives the same result for the same inputs.
    """
    q = np.asarray(q0, float).copy()
    pose, rot, jac = jacobian(fk, q)
    gain = jac.T @ np.linalg.inv(jac @ jac.T + damping ** 2 * np.eye(6))   # J^T (J J^T + lambda^2 I)^-1
    null = np.eye(q.shape[0]) - gain @ jac
    for i in range(iterations):
        if i:
            pose = fk(q)
            rot = quat_to_mat(pose[3:])
        error = np.concatenate([target_pos - pose[:3], rotation_vector(target_rot @ rot.T)])
        posture = null @ (posture_gain * (rest - q)) if i == 0 else 0.0   # then the corrections converge
        q = np.clip(q + gain @ error + posture, lower, upper)
    return q


def yaw_about(rot: np.ndarray, reference: np.ndarray) -> float:
    """Rotation about the world z axis that takes `reference` closest to `rot` (the tool's yaw)."""
    m = rot @ reference.T
    return float(np.arctan2(m[1, 0] - m[0, 1], m[0, 0] + m[1, 1]))
