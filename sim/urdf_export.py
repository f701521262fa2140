"""URDF generated from the robot's MJCF, so PyBullet runs the same arm as MuJoCo from one description.

The MJCF (sim/assets/<robot>/*.xml) is the single source of truth. This module reads the *compiled*
`mujoco.MjModel` (so default classes, `fromto`, `fullinertia`, `autolimits` etc. are already resolved by
MuJoCo's own compiler) and writes the equivalent URDF: one link per body, revolute/continuous/prismatic
joints with axes, origins, limits and damping/friction, inertials with mass, centre of mass and the full
inertia tensor, and primitive geoms (box, sphere, capsule, cylinder) as visual and collision shapes.

Why hand-written (checked, not assumed):
* `pybullet.loadMJCF` handles only a small MJCF subset. On a 2-body test model it rejected a joint without an
  explicit `type` (MJCF's default is hinge) and silently dropped that whole subtree; with `type` given it
  still ignored joint ranges and damping from default classes, `fullinertia` and explicit geom masses. It also
  has no notion of actuators, tendons, equality constraints or sites.
* `mjcf-urdf-simple-converter` (PyPI) states it converts "limited elements" for RViz visualisation, exports
  geoms as STL meshes and does not intend to be a full translation; `mjcf2urdf` (0.0.1, 2020) is unmaintained.
What URDF cannot hold (actuators, tendons, equality constraints, gravity compensation, armature, sites) is
read from the same MjModel by the PyBullet backend (sim/backends/pybullet_backend.py).

Frames: a URDF joint frame is its child link's frame, while an MJCF joint may sit anywhere in its body. The link
frame is therefore the body frame shifted by the joint's position (`link_frame_offset`); inertials, geoms and
sites are expressed relative to that shifted frame.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

EXPORTER_VERSION = 1
CACHE_ENV = "ROBOT_RL_CACHE"


class UrdfExportError(ValueError):
    pass


def quat_to_mat(quat_wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(quat_wxyz, dtype=float) / np.linalg.norm(quat_wxyz)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def mat_to_rpy(rot: np.ndarray) -> np.ndarray:
    """URDF's fixed-axis roll, pitch, yaw: R = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    pitch = np.arcsin(np.clip(-rot[2, 0], -1.0, 1.0))
    if abs(rot[2, 0]) < 1.0 - 1e-9:
        roll = np.arctan2(rot[2, 1], rot[2, 2])
        yaw = np.arctan2(rot[1, 0], rot[0, 0])
    else:  # gimbal lock: only roll - yaw (or roll + yaw) is defined; put it all in yaw
        roll = 0.0
        yaw = np.arctan2(-rot[0, 1], rot[1, 1])
    return np.array([roll, pitch, yaw])


def robot_root_body(model, root_body: str | None = None) -> int:
    """The body that becomes the URDF's base link: `root_body`, or the only child of the world body."""
    import mujoco

    if root_body is not None:
        bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, root_body)
        if bid < 0:
            raise UrdfExportError(f"root body {root_body!r} not in model {model_name(model)!r}")
        return bid
    roots = [b for b in range(1, model.nbody) if model.body_parentid[b] == 0]
    if len(roots) != 1:
        names = [body_name(model, b) for b in roots]
        raise UrdfExportError(f"model {model_name(model)!r}: expected one robot body under <worldbody>, found "
                              f"{names}; pass root_body")
    return roots[0]


def model_name(model) -> str:
    import mujoco

    return mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_MODEL, 0) or "robot"


def body_name(model, bid: int) -> str:
    import mujoco

    name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, bid)
    return name if name else f"body{bid}"


def subtree(model, root: int) -> list[int]:
    """Body ids of `root` and its descendants, parents before children (MuJoCo's body order)."""
    inside = {root}
    for b in range(root + 1, model.nbody):
        if model.body_parentid[b] in inside:
            inside.add(b)
    return sorted(inside)


def link_frame_offset(model, bid: int) -> np.ndarray:
    """Position of the URDF link frame in the MJCF body frame (the body's joint position; 0 without joint)."""
    if model.body_jntnum[bid] == 0:
        return np.zeros(3)
    return np.array(model.jnt_pos[model.body_jntadr[bid]], dtype=float)


def _fmt(values) -> str:
    return " ".join(f"{float(v):.10g}" for v in np.atleast_1d(values))


def _origin(pos: np.ndarray, rot: np.ndarray | None = None) -> str:
    rpy = np.zeros(3) if rot is None else mat_to_rpy(rot)
    return f'<origin xyz="{_fmt(pos)}" rpy="{_fmt(rpy)}"/>'


def _geometry(model, gid: int) -> str:
    import mujoco

    gtype, size = model.geom_type[gid], model.geom_size[gid]
    if gtype == mujoco.mjtGeom.mjGEOM_BOX:
        return f'<box size="{_fmt(2 * size)}"/>'
    if gtype == mujoco.mjtGeom.mjGEOM_SPHERE:
        return f'<sphere radius="{_fmt(size[0])}"/>'
    if gtype == mujoco.mjtGeom.mjGEOM_CAPSULE:  # PyBullet's URDF extension; axis z, length between the caps
        return f'<capsule radius="{_fmt(size[0])}" length="{_fmt(2 * size[1])}"/>'
    if gtype == mujoco.mjtGeom.mjGEOM_CYLINDER:
        return f'<cylinder radius="{_fmt(size[0])}" length="{_fmt(2 * size[1])}"/>'
    name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, gid) or f"#{gid}"
    raise UrdfExportError(f"model {model_name(model)!r}: geom {name!r} has type "
                          f"{mujoco.mjtGeom(gtype).name}; the URDF exporter supports box, sphere, capsule, cylinder")


def geom_rgba(model, gid: int) -> np.ndarray:
    matid = model.geom_matid[gid]
    return np.array(model.mat_rgba[matid] if matid >= 0 else model.geom_rgba[gid], dtype=float)


def geom_collides(model, gid: int) -> bool:
    return bool(model.geom_contype[gid] or model.geom_conaffinity[gid])


# MuJoCo shows geom groups 0-2 by default; higher groups hold collision-only/debug geometry.
VISIBLE_GEOM_GROUPS = (0, 1, 2)


def _link_xml(model, bid: int) -> list[str]:
    offset = link_frame_offset(model, bid)
    lines = [f"  <link name={quoteattr(body_name(model, bid))}>"]
    mass = float(model.body_mass[bid])
    rot_i = quat_to_mat(model.body_iquat[bid])
    inertia = rot_i @ np.diag(model.body_inertia[bid]) @ rot_i.T   # full tensor in the link's orientation
    lines += ["    <inertial>", f"      {_origin(model.body_ipos[bid] - offset)}",
              f'      <mass value="{mass:.10g}"/>',
              f'      <inertia ixx="{inertia[0, 0]:.10g}" ixy="{inertia[0, 1]:.10g}" ixz="{inertia[0, 2]:.10g}" '
              f'iyy="{inertia[1, 1]:.10g}" iyz="{inertia[1, 2]:.10g}" izz="{inertia[2, 2]:.10g}"/>',
              "    </inertial>"]
    friction = None
    for gid in range(model.body_geomadr[bid], model.body_geomadr[bid] + model.body_geomnum[bid]):
        origin = _origin(model.geom_pos[gid] - offset, quat_to_mat(model.geom_quat[gid]))
        geometry = _geometry(model, gid)
        if model.geom_group[gid] in VISIBLE_GEOM_GROUPS:
            rgba = geom_rgba(model, gid)
            lines += ["    <visual>", f"      {origin}", f"      <geometry>{geometry}</geometry>",
                      f'      <material name={quoteattr(f"geom{gid}")}><color rgba="{_fmt(rgba)}"/></material>', "    </visual>"]
        if geom_collides(model, gid):
            lines += ["    <collision>", f"      {origin}", f"      <geometry>{geometry}</geometry>",
                      "    </collision>"]
            # PyBullet has one friction per link: take the largest, as MuJoCo's contact uses the max of a pair.
            f = np.asarray(model.geom_friction[gid], dtype=float)
            friction = f if friction is None else np.maximum(friction, f)
    if friction is not None:
        lines += ["    <contact>", f'      <lateral_friction value="{friction[0]:.10g}"/>',
                  f'      <spinning_friction value="{friction[1]:.10g}"/>',
                  f'      <rolling_friction value="{friction[2]:.10g}"/>', "    </contact>"]
    lines.append("  </link>")
    return lines


def joint_effort_limit(model, jid: int) -> float | None:
    """Largest force the joint's actuators can apply (|gear| * forcerange), or its actuatorfrcrange."""
    import mujoco

    if model.jnt_actfrclimited[jid]:
        return float(np.max(np.abs(model.jnt_actfrcrange[jid])))
    efforts = [float(np.max(np.abs(model.actuator_forcerange[a])) * abs(model.actuator_gear[a, 0]))
               for a in range(model.nu)
               if model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT and model.actuator_trnid[a, 0] == jid
               and model.actuator_forcelimited[a]]
    return max(efforts) if efforts else None


def _joint_xml(model, bid: int, velocity_limits: dict[str, float]) -> list[str]:
    import mujoco

    parent = model.body_parentid[bid]
    child_name, parent_name = body_name(model, bid), body_name(model, parent)
    rot = quat_to_mat(model.body_quat[bid])
    origin = model.body_pos[bid] + rot @ link_frame_offset(model, bid) - link_frame_offset(model, parent)
    njnt = model.body_jntnum[bid]
    if njnt == 0:
        return [f'  <joint name={quoteattr(f"{parent_name}_to_{child_name}_fixed")} type="fixed">',
                f"    {_origin(origin, rot)}", f"    <parent link={quoteattr(parent_name)}/>",
                f"    <child link={quoteattr(child_name)}/>", "  </joint>"]
    if njnt > 1:
        raise UrdfExportError(f"model {model_name(model)!r}: body {child_name!r} has {njnt} joints; URDF allows one "
                              f"joint per link (split the body into one body per joint)")
    jid = model.body_jntadr[bid]
    jname = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, jid)
    jtype = model.jnt_type[jid]
    if jtype == mujoco.mjtJoint.mjJNT_HINGE:
        urdf_type = "revolute" if model.jnt_limited[jid] else "continuous"
    elif jtype == mujoco.mjtJoint.mjJNT_SLIDE:
        if not model.jnt_limited[jid]:
            raise UrdfExportError(f"model {model_name(model)!r}: slide joint {jname!r} needs a range (URDF "
                                  f"prismatic joints are limited)")
        urdf_type = "prismatic"
    else:
        raise UrdfExportError(f"model {model_name(model)!r}: joint {jname!r} is "
                              f"{mujoco.mjtJoint(jtype).name}; only hinge and slide joints map to URDF")
    dof = model.jnt_dofadr[jid]
    lines = [f"  <joint name={quoteattr(jname)} type={quoteattr(urdf_type)}>", f"    {_origin(origin, rot)}",
             f"    <parent link={quoteattr(parent_name)}/>", f"    <child link={quoteattr(child_name)}/>",
             f'    <axis xyz="{_fmt(model.jnt_axis[jid])}"/>']
    limit = ""
    if urdf_type != "continuous":
        lo, hi = model.jnt_range[jid]
        limit += f' lower="{lo:.10g}" upper="{hi:.10g}"'
    effort = joint_effort_limit(model, jid)
    if effort is not None:
        limit += f' effort="{effort:.10g}"'
    if jname in velocity_limits:
        limit += f' velocity="{velocity_limits[jname]:.10g}"'
    if limit:
        lines.append(f"    <limit{limit}/>")
    lines += [f'    <dynamics damping="{model.dof_damping[dof]:.10g}" friction="{model.dof_frictionloss[dof]:.10g}"/>',
              "  </joint>"]
    return lines


def mjcf_to_urdf(model, root_body: str | None = None, velocity_limits: dict[str, float] | None = None) -> str:
    """URDF text for the body tree under `root_body` (default: the only child of <worldbody>) of a compiled
    MjModel. The base link's pose in the world is not part of a URDF: pass it to `loadURDF`."""
    root = robot_root_body(model, root_body)
    if model.body_jntnum[root]:
        raise UrdfExportError(f"model {model_name(model)!r}: root body {body_name(model, root)!r} has a joint; the "
                              f"exporter writes fixed-base robots only")
    bodies = subtree(model, root)
    names = [body_name(model, b) for b in bodies]
    if len(set(names)) != len(names):
        raise UrdfExportError(f"model {model_name(model)!r}: body names must be unique for URDF links: {names}")
    lines = ['<?xml version="1.0"?>',
             f"<!-- Generated by sim/urdf_export.py (version {EXPORTER_VERSION}) from MJCF model "
             f"{model_name(model)!r}; do not edit, edit the MJCF. -->",
             f"<robot name={quoteattr(model_name(model))}>"]
    for bid in bodies:
        lines += _link_xml(model, bid)
    for bid in bodies[1:]:
        lines += _joint_xml(model, bid, velocity_limits or {})
    lines.append("</robot>")
    return "\n".join(lines) + "\n"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "robot_rl")) / "urdf"


def cached_urdf(model, root_body: str | None = None, velocity_limits: dict[str, float] | None = None,
                directory: Path | None = None) -> Path:
    """Write the URDF for `model` once into the cache, named by the hash of its content, and return its path.

    Keying by the generated text (not the MJCF file) covers included files and exporter changes alike; the
    export itself takes milliseconds. The file is written atomically, so concurrent workers never read half a file.
    """
    text = mjcf_to_urdf(model, root_body, velocity_limits)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    if directory is None:
        directory = cache_dir()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError:   # read-only home (some CI sandboxes): a per-user folder in the temp dir instead
            directory = Path(tempfile.gettempdir()) / f"robot_rl-urdf-{os.getuid()}"
    directory = Path(directory)
    path = directory / f"{model_name(model)}-{digest}.urdf"
    if path.is_file():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
