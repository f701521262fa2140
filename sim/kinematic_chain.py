"""Extract the serial chain from the world to a site of an MJCF as plain data, for `hardware.kinematics`
(numpy forward kinematics on the robot computer, where MuJoCo is not installed). The dict is JSON-able, so an
exported policy bundle carries it (docs/formats.md, "Safety limits")."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

CHAIN_FORMAT = "robot_rl.kinematic_chain"   # same values as hardware.kinematics (sim/ does not import hardware/)
CHAIN_VERSION = 1


class KinematicChainError(ValueError):
    pass


def chain_from_mjcf(path: str | Path, joints: Sequence[str], ee_site: str) -> dict[str, Any]:
    """The chain from the world body to `ee_site`, with exactly `joints` (in this order) as its moving joints.

    Uses the compiled model, so every MJCF way of writing a frame (quat, euler, axisangle, xyaxes, defaults
    classes) is resolved by MuJoCo. Joints on the path must be hinge or slide and all listed; listed joints must
    all lie on the path.
    """
    import mujoco

    path = Path(path)
    model = mujoco.MjModel.from_xml_path(str(path))
    site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, ee_site)
    if site < 0:
        raise KinematicChainError(f"{path}: site {ee_site!r} not found")
    bodies = []
    body = int(model.site_bodyid[site])
    while body != 0:
        bodies.append(body)
        body = int(model.body_parentid[body])
    bodies.reverse()

    # `pending` is the fixed transform accumulated since the last joint frame (rotation, translation).
    pending_rot, pending_pos = np.eye(3), np.zeros(3)
    out_joints = []
    for body in bodies:
        pending_pos = pending_pos + pending_rot @ model.body_pos[body]
        pending_rot = pending_rot @ _quat_to_matrix(model.body_quat[body])
        for jid in range(model.body_jntadr[body], model.body_jntadr[body] + model.body_jntnum[body]):
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, jid)
            jtype = int(model.jnt_type[jid])
            hinge, slide = int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)
            if jtype not in (hinge, slide):
                raise KinematicChainError(f"{path}: joint {name!r} on the path to site {ee_site!r} is "
                                          f"{mujoco.mjtJoint(jtype).name}; only hinge and slide joints are supported")
            # MuJoCo rotates a body about the axis through the joint's anchor (jnt_pos in body coordinates):
            # frame = pending * T(anchor) * motion * T(-anchor).
            anchor = model.jnt_pos[jid].copy()
            origin_pos = pending_pos + pending_rot @ anchor
            out_joints.append({
                "name": name,
                "type": "hinge" if jtype == hinge else "slide",
                "pos": origin_pos.tolist(), "quat": _matrix_to_quat(pending_rot).tolist(),
                "axis": model.jnt_axis[jid].tolist(), "ref": float(model.qpos0[model.jnt_qposadr[jid]]),
            })
            pending_rot, pending_pos = np.eye(3), -anchor
    found = [j["name"] for j in out_joints]
    if found != list(joints):
        raise KinematicChainError(f"{path}: joints on the path from the world to site {ee_site!r} are {found}, "
                                  f"expected exactly {list(joints)} in this order")
    tip_pos = pending_pos + pending_rot @ model.site_pos[site]
    tip_rot = pending_rot @ _quat_to_matrix(model.site_quat[site])
    return {"format": CHAIN_FORMAT, "version": CHAIN_VERSION, "joints": out_joints,
            "tip": {"name": ee_site, "pos": tip_pos.tolist(), "quat": _matrix_to_quat(tip_rot).tolist()}}


def _quat_to_matrix(quat: np.ndarray) -> np.ndarray:
    import mujoco

    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat, dtype=float))
    return mat.reshape(3, 3)


def _matrix_to_quat(rot: np.ndarray) -> np.ndarray:
    import mujoco

    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(rot, dtype=float).reshape(9))
    return quat if quat[0] >= 0 else -quat
