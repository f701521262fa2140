"""MuJoCo implementation of `sim.backends.base.PhysicsBackend` on the scene of `sim.scene`."""
from __future__ import annotations

import atexit
import weakref

import mujoco
import numpy as np

from sim import scene
from sim.backends.base import ENGINE_GLOBAL_PARAMETERS, JOINT_PARAMETER_KINDS
from sim.robot import RobotConfig

PAYLOAD_RADIUS = 0.03   # payload modelled as a solid sphere at the tool centre point (for its inertia), m


def control_substeps(control_dt: float, physics_dt: float) -> int:
    n = round(control_dt / physics_dt)
    if n < 1 or abs(n * physics_dt - control_dt) > 1e-9:
        raise ValueError(f"control_dt={control_dt} must be a whole multiple of physics_dt={physics_dt}")
    return n


class MuJoCoBackend:
    def __init__(self, robot: RobotConfig, control_dt: float = 0.05, physics_dt: float = 0.002):
        self.robot = robot
        self.physics_dt = physics_dt
        self.control_dt = control_dt
        self._substeps = control_substeps(control_dt, physics_dt)
        self.model = scene.scene_spec(robot, physics_dt).compile()
        self.data = mujoco.MjData(self.model)
        self._fk_data = mujoco.MjData(self.model)   # scratch state for forward_kinematics
        m = self.model
        name2id = mujoco.mj_name2id
        self._arm_jnt = np.array([name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in robot.arm_joints])
        self._grip_jnt = np.array([name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in robot.gripper_joints])
        for names, ids in ((robot.arm_joints, self._arm_jnt), (robot.gripper_joints, self._grip_jnt)):
            missing = [n for n, i in zip(names, ids) if i < 0]
            if missing:
                raise ValueError(f"{robot.description}: joints {missing} not found")
        self._arm_qadr = m.jnt_qposadr[self._arm_jnt]
        self._arm_dadr = m.jnt_dofadr[self._arm_jnt]
        self._grip_qadr = m.jnt_qposadr[self._grip_jnt]
        # Arm actuators act on arm joints (one each); the gripper actuator is the one left (joint or tendon).
        joint_of_actuator = {int(m.actuator_trnid[a, 0]): a for a in range(m.nu)
                             if m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT}
        missing = [j for j, jid in zip(robot.arm_joints, self._arm_jnt) if int(jid) not in joint_of_actuator]
        if missing:
            raise ValueError(f"{robot.description}: no actuator drives arm joint(s) {missing}")
        self._arm_act = np.array([joint_of_actuator[int(j)] for j in self._arm_jnt])
        rest = [a for a in range(m.nu) if a not in set(self._arm_act.tolist())]
        if len(rest) != 1:
            raise ValueError(f"{robot.description}: expected exactly one gripper actuator besides the arm's, "
                             f"found {len(rest)}")
        self._grip_act = rest[0]
        self._site = name2id(m, mujoco.mjtObj.mjOBJ_SITE, robot.ee_site)
        if self._site < 0:
            raise ValueError(f"{robot.description}: end-effector site {robot.ee_site!r} not found")
        obj_jnt = name2id(m, mujoco.mjtObj.mjOBJ_JOINT, scene.OBJECT_JOINT)
        self._obj_qadr = m.jnt_qposadr[obj_jnt]
        self._obj_dadr = m.jnt_dofadr[obj_jnt]
        self._obj_body = name2id(m, mujoco.mjtObj.mjOBJ_BODY, scene.OBJECT_BODY)
        self._goal_mocap = m.body_mocapid[name2id(m, mujoco.mjtObj.mjOBJ_BODY, scene.GOAL_BODY)]
        self._payload_body = name2id(m, mujoco.mjtObj.mjOBJ_BODY, scene.PAYLOAD_BODY)
        # Which finger (index) each geom belongs to, and which geoms are the object's, for contact checks.
        self._finger_of_geom = np.full(m.ngeom, -1)
        for i, jnt in enumerate(self._grip_jnt):
            self._finger_of_geom[m.geom_bodyid == m.jnt_bodyid[jnt]] = i
        self._n_fingers = len(self._grip_jnt)
        self._is_object_geom = m.geom_bodyid == self._obj_body
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        weakref.finalize(self, _close_renderers, self._renderers)   # GL contexts go with the backend
        self._quat = np.zeros(4)

    # --- state -------------------------------------------------------------------------------
    def reset(self, arm_qpos: np.ndarray, gripper_width: float, object_pose: np.ndarray) -> None:
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[self._arm_qadr] = arm_qpos
        d.qpos[self._grip_qadr] = gripper_width / len(self._grip_qadr)
        d.qpos[self._obj_qadr:self._obj_qadr + 7] = object_pose
        self.command(np.asarray(arm_qpos, float), gripper_width)
        mujoco.mj_forward(m, d)

    def arm_qpos(self) -> np.ndarray:
        return self.data.qpos[self._arm_qadr].copy()

    def arm_qvel(self) -> np.ndarray:
        return self.data.qvel[self._arm_dadr].copy()

    def gripper_width(self) -> float:
        return float(self.data.qpos[self._grip_qadr].sum())

    def ee_pose(self) -> np.ndarray:
        return self._site_pose(self.data)

    def _site_pose(self, data: mujoco.MjData) -> np.ndarray:
        mujoco.mju_mat2Quat(self._quat, data.site_xmat[self._site])
        return np.concatenate([data.site_xpos[self._site], self._quat])

    def object_pose(self) -> np.ndarray:
        return self.data.qpos[self._obj_qadr:self._obj_qadr + 7].copy()

    def object_velocity(self) -> np.ndarray:
        # Free joint: linear velocity in the world frame, angular velocity in the body frame -> rotate to world.
        v = self.data.qvel[self._obj_dadr:self._obj_dadr + 6]
        rot = self.data.xmat[self._obj_body].reshape(3, 3)
        return np.concatenate([v[:3], rot @ v[3:]])

    def fingers_touch_object(self) -> bool:
        geoms = self.data.contact.geom[:self.data.ncon]
        is_obj = self._is_object_geom[geoms]
        other = np.where(is_obj[:, 0], geoms[:, 1], geoms[:, 0])[is_obj.any(axis=1)]
        return bool(np.all(np.isin(np.arange(self._n_fingers), self._finger_of_geom[other])))

    # --- control -----------------------------------------------------------------------------
    def command(self, arm_targets: np.ndarray, gripper_width: float) -> None:
        ctrl_range = self.model.actuator_ctrlrange
        self.data.ctrl[self._arm_act] = np.clip(arm_targets, ctrl_range[self._arm_act, 0],
                                                ctrl_range[self._arm_act, 1])
        self.data.ctrl[self._grip_act] = np.clip(gripper_width, *ctrl_range[self._grip_act])

    def step(self) -> None:
        mujoco.mj_step(self.model, self.data, nstep=self._substeps)
        # mj_step leaves site poses at the start of the last substep; recompute them for the new joint angles so
        # the observed tool position is the forward kinematics of the observed joints (as on the robot).
        mujoco.mj_kinematics(self.model, self.data)

    def set_goal_marker(self, position: np.ndarray) -> None:
        self.data.mocap_pos[self._goal_mocap] = position
        mujoco.mj_kinematics(self.model, self.data)   # so the next render shows it without a physics step

    # --- kinematics --------------------------------------------------------------------------
    def forward_kinematics(self, arm_qpos: np.ndarray) -> np.ndarray:
        self._fk_data.qpos[self._arm_qadr] = arm_qpos
        mujoco.mj_kinematics(self.model, self._fk_data)
        return self._site_pose(self._fk_data)

    # --- named physical parameters -----------------------------------------------------------
    def parameter_names(self) -> list[str]:
        names = [f"{kind}/{j}" for kind in JOINT_PARAMETER_KINDS for j in self.robot.arm_joints]
        if self._payload_body >= 0:
            names += list(ENGINE_GLOBAL_PARAMETERS)
        return names

    def _slot(self, name: str) -> tuple[str, int]:
        kind, _, joint = name.partition("/")
        if joint and kind in JOINT_PARAMETER_KINDS and joint in self.robot.arm_joints:
            return kind, self.robot.arm_joints.index(joint)
        if name in ENGINE_GLOBAL_PARAMETERS and self._payload_body >= 0:
            return name, -1
        raise KeyError(f"unknown physical parameter {name!r}; known: {self.parameter_names()}")

    def get_parameter(self, name: str) -> float:
        kind, i = self._slot(name)
        m = self.model
        if kind in ("damping", "armature", "frictionloss"):
            return float(getattr(m, f"dof_{kind}")[self._arm_dadr[i]])
        if kind == "kp":
            return float(m.actuator_gainprm[self._arm_act[i], 0])
        if kind == "kv":
            return float(-m.actuator_biasprm[self._arm_act[i], 2])
        return float(m.body_mass[self._payload_body])

    def set_parameter(self, name: str, value: float) -> None:
        kind, i = self._slot(name)
        value = float(value)
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"physical parameter {name!r} must be a finite number >= 0, got {value}")
        m = self.model
        if kind in ("damping", "armature", "frictionloss"):
            getattr(m, f"dof_{kind}")[self._arm_dadr[i]] = value
        elif kind == "kp":   # position servo: force = kp * (ctrl - q) - kv * qdot
            m.actuator_gainprm[self._arm_act[i], 0] = value
            m.actuator_biasprm[self._arm_act[i], 1] = -value
        elif kind == "kv":
            m.actuator_biasprm[self._arm_act[i], 2] = -value
        else:
            m.body_mass[self._payload_body] = value
            m.body_inertia[self._payload_body] = 0.4 * value * PAYLOAD_RADIUS ** 2

    # --- pixels ------------------------------------------------------------------------------
    def render(self, width: int, height: int, camera: str = scene.CAMERA_NAME) -> np.ndarray:
        renderer = self._renderers.get((width, height))
        if renderer is None:
            first = not self._renderers
            renderer = self._renderers[(width, height)] = mujoco.Renderer(self.model, height, width)
            if first:
                # Also at interpreter exit, for backends nobody closed: registered after the GL backend's own
                # teardown (atexit runs last-registered first), so the contexts go while EGL/OSMesa still works.
                atexit.register(_close_renderers, self._renderers)
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()

    def close(self) -> None:
        _close_renderers(self._renderers)


def _close_renderers(renderers: dict) -> None:
    for renderer in renderers.values():
        renderer.close()
    renderers.clear()
