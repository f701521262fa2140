"""PyBullet implementation of `sim.backends.base.PhysicsBackend` on the same scene as MuJoCo.

Everything comes from the compiled MuJoCo scene (`sim.scene.scene_spec(robot).compile()`): the arm is loaded from a
URDF generated out of it (sim/urdf_export.py); actuators, tendons, gravity compensation, armature and the finger
coupling, which URDF cannot hold, are read from the same MjModel; table, cube, goal marker and the "front" camera are
rebuilt from its geoms, bodies and camera. One PyBullet client (DIRECT, never GUI) per backend instance.

Actuation follows MuJoCo's position actuators and its `implicitfast` integrator. Every physics step:
  force_a = gain_a * ctrl_a + b0_a + b1_a * L_a + b2_a * dL_a    (L = actuator length = moment . q), clipped to
            the actuator's forcerange; joint torques tau = moment^T force (joint and fixed-tendon transmissions);
  MuJoCo advances velocities with (M + A + dt*D) qacc = tau - c(q, qdot) - d*qdot + gravity terms, where A is the
  armature, D = diag(d) + moment^T diag(-b2) moment holds the velocity derivatives it integrates implicitly
  (joint damping d and actuator kv; an actuator at its force limit has no velocity derivative).
PyBullet has neither armature nor implicit integration: it advances with M qacc = u - c + ... for the torque u it is
given. Applying u = tau - d*qdot - (A + dt*D) qacc with the qacc solved above makes PyBullet's free-motion
acceleration equal MuJoCo's (one 9x9 solve from PyBullet's own mass matrix and Coriolis terms). That also makes the
stiff servo gains stable at the 2 ms step, which explicit PD torques on the bare link inertia are not
(kv*dt/I > 2 on the wrist joints).
This is why damping is part of that solve instead of PyBullet's (explicit) jointDamping, which is set to 0.
Structural differences that remain, on purpose (PyBullet is this project's structural sim-to-real gap):
  * armature and implicit damping enter only through the predicted acceleration: contact forces, friction loss and
    the finger coupling are solved by PyBullet against the bare link inertia M, not M + A;
  * friction loss is PyBullet's zero-target velocity motor with max force = frictionloss (a hard Coulomb
    constraint), MuJoCo's is a soft constraint;
  * contacts: PyBullet's LCP solver with one friction per link and friction combined by product, MuJoCo's soft
    convex contacts with friction combined by max; the finger coupling is a gear constraint, not MuJoCo's soft
    equality.
Gravity: MuJoCo's gravcomp cancels gravity on the arm; PyBullet's world gravity is set to 0 and gravity is applied as
an external force on every body that is not (fully) compensated: the cube, and the payload at the hand.
"""
from __future__ import annotations

import mujoco
import numpy as np
import pybullet as pb

from sim import scene
from sim.backends.base import ENGINE_GLOBAL_PARAMETERS, JOINT_PARAMETER_KINDS
from sim.backends.mujoco_backend import control_substeps
from sim.robot import RobotConfig
from sim.urdf_export import (VISIBLE_GEOM_GROUPS, cached_urdf, geom_collides, geom_rgba, link_frame_offset,
                             quat_to_mat, subtree)

PAYLOAD_RADIUS = 0.03   # payload modelled as a solid sphere at the tool centre point, as the MuJoCo backend does
LIGHT_DIRECTION = (0.2, -0.5, 1.5)   # towards the light, world frame (MuJoCo scene's key light, reversed)


def _xyzw(quat_wxyz) -> tuple[float, float, float, float]:
    w, x, y, z = quat_wxyz
    return (float(x), float(y), float(z), float(w))


def _wxyz(quat_xyzw) -> np.ndarray:
    x, y, z, w = quat_xyzw
    return np.array([w, x, y, z])


class PyBulletBackend:
    def __init__(self, robot: RobotConfig, control_dt: float = 0.05, physics_dt: float = 0.002):
        self.robot = robot
        self.physics_dt = physics_dt
        self.control_dt = control_dt
        self._substeps = control_substeps(control_dt, physics_dt)
        self.model = m = scene.scene_spec(robot, physics_dt).compile()
        self._client = pb.connect(pb.DIRECT)
        self._gravity = np.array(m.opt.gravity, dtype=float)
        try:
            self._build(m)
        except BaseException:
            pb.disconnect(self._client)
            raise

    # --- building the scene --------------------------------------------------------------------
    def _id(self, kind, name: str) -> int:
        i = mujoco.mj_name2id(self.model, kind, name)
        if i < 0:
            raise ValueError(f"{self.robot.description}: {kind.name[6:].lower()} {name!r} not found in the scene")
        return i

    def _build(self, m) -> None:
        mj, cid = mujoco, self._client
        obj = mj.mjtObj
        pb.setGravity(0.0, 0.0, 0.0, physicsClientId=cid)   # gravity is applied per body, see module docstring
        pb.setPhysicsEngineParameter(fixedTimeStep=self.physics_dt, numSubSteps=0, physicsClientId=cid)

        # Robot: the world's child body that carries the arm.
        arm_jnt = [self._id(obj.mjOBJ_JOINT, j) for j in self.robot.arm_joints]
        grip_jnt = [self._id(obj.mjOBJ_JOINT, j) for j in self.robot.gripper_joints]
        root = m.jnt_bodyid[arm_jnt[0]]
        while m.body_parentid[root] != 0:
            root = m.body_parentid[root]
        self._robot_bodies = subtree(m, root)
        velocity_limits = dict(zip(self.robot.arm_joints, self.robot.velocity_limits))
        urdf = cached_urdf(m, root_body=mj.mj_id2name(m, obj.mjOBJ_BODY, root), velocity_limits=velocity_limits)
        data = mj.MjData(m)
        mj.mj_kinematics(m, data)
        mj.mj_camlight(m, data)
        base_pos = data.xpos[root] + data.xmat[root].reshape(3, 3) @ link_frame_offset(m, root)
        self._rid = pb.loadURDF(str(urdf), basePosition=base_pos.tolist(), baseOrientation=_xyzw(data.xquat[root]),
                                useFixedBase=True, flags=pb.URDF_USE_INERTIA_FROM_FILE, physicsClientId=cid)
        self._link = {pb.getJointInfo(self._rid, j, physicsClientId=cid)[12].decode(): j
                      for j in range(pb.getNumJoints(self._rid, physicsClientId=cid))}
        self._link[mj.mj_id2name(m, obj.mjOBJ_BODY, root)] = -1
        joint_index = {pb.getJointInfo(self._rid, j, physicsClientId=cid)[1].decode(): j
                       for j in range(pb.getNumJoints(self._rid, physicsClientId=cid))}

        # Movable joints in MuJoCo dof order (all robot dofs are hinge/slide: one dof each).
        robot_jnt = [j for j in range(m.njnt) if m.jnt_bodyid[j] in set(self._robot_bodies)]
        self._jnt = np.array(robot_jnt)
        self._dof = m.jnt_dofadr[self._jnt]
        self._pb_joint = [joint_index[mj.mj_id2name(m, obj.mjOBJ_JOINT, j)] for j in robot_jnt]
        pos_in_list = {j: i for i, j in enumerate(robot_jnt)}
        self._arm = np.array([pos_in_list[j] for j in arm_jnt])
        self._grip = np.array([pos_in_list[j] for j in grip_jnt])
        n = len(robot_jnt)
        for j in range(-1, pb.getNumJoints(self._rid, physicsClientId=cid)):
            pb.changeDynamics(self._rid, j, linearDamping=0.0, angularDamping=0.0, jointDamping=0.0,
                              physicsClientId=cid)
        for j in self._pb_joint:   # disable the default velocity motors (they are re-armed for friction loss)
            pb.setJointMotorControl2(self._rid, j, pb.VELOCITY_CONTROL, force=0.0, physicsClientId=cid)

        # Per-dof parameters and the actuators (MuJoCo's affine gain/bias law on joint or fixed-tendon lengths).
        self._damping = m.dof_damping[self._dof].astype(float)
        self._armature = m.dof_armature[self._dof].astype(float)
        self._frictionloss = np.zeros(n)
        for i in range(n):
            self._set_frictionloss(i, float(m.dof_frictionloss[self._dof[i]]))
        self._moment = np.zeros((m.nu, n))
        for a in range(m.nu):
            if int(m.actuator_dyntype[a]) != int(mj.mjtDyn.mjDYN_NONE) \
                    or int(m.actuator_gaintype[a]) != int(mj.mjtGain.mjGAIN_FIXED) \
                    or int(m.actuator_biastype[a]) not in (int(mj.mjtBias.mjBIAS_AFFINE), int(mj.mjtBias.mjBIAS_NONE)):
                raise ValueError(f"{self.robot.description}: actuator {a} is not a plain position/motor actuator "
                                 f"(no activation dynamics, fixed gain, affine bias); PyBullet backend cannot run it")
            gear = m.actuator_gear[a, 0]
            if m.actuator_trntype[a] == mj.mjtTrn.mjTRN_JOINT:
                self._moment[a, pos_in_list[int(m.actuator_trnid[a, 0])]] = gear
            elif m.actuator_trntype[a] == mj.mjtTrn.mjTRN_TENDON:
                t = m.actuator_trnid[a, 0]
                for w in range(m.tendon_adr[t], m.tendon_adr[t] + m.tendon_num[t]):
                    if m.wrap_type[w] != mj.mjtWrap.mjWRAP_JOINT:
                        raise ValueError(f"{self.robot.description}: actuator {a} drives a spatial tendon; only "
                                         f"fixed tendons are supported")
                    self._moment[a, pos_in_list[int(m.wrap_objid[w])]] = gear * m.wrap_prm[w]
            else:
                raise ValueError(f"{self.robot.description}: actuator {a} has an unsupported transmission")
        self._gain = m.actuator_gainprm[:, 0].astype(float)
        self._bias = m.actuator_biasprm[:, :3].astype(float)
        limited = m.actuator_forcelimited.astype(bool)
        self._force_lo = np.where(limited, m.actuator_forcerange[:, 0], -np.inf)
        self._force_hi = np.where(limited, m.actuator_forcerange[:, 1], np.inf)
        self._implicit_cache: dict[bytes, np.ndarray] = {}
        self._ctrlrange = np.where(m.actuator_ctrllimited[:, None].astype(bool), m.actuator_ctrlrange,
                                   [-np.inf, np.inf])
        self._ctrl = np.zeros(m.nu)
        arm_act = [int(np.flatnonzero(self._moment[:, i])[0]) if np.any(self._moment[:, i]) else -1 for i in self._arm]
        if min(arm_act) < 0:
            raise ValueError(f"{self.robot.description}: every arm joint needs an actuator")
        self._arm_act = np.array(arm_act)
        rest = [a for a in range(m.nu) if a not in set(arm_act)]
        if len(rest) != 1:
            raise ValueError(f"{self.robot.description}: expected exactly one gripper actuator besides the arm's")
        self._grip_act = rest[0]

        # Joint equality constraints (finger coupling q1 = c * q2) as PyBullet gear constraints.
        for e in range(m.neq):
            if m.eq_type[e] != mj.mjtEq.mjEQ_JOINT or not m.eq_active0[e]:
                continue
            j1, j2 = int(m.eq_obj1id[e]), int(m.eq_obj2id[e])
            c0, c1 = m.eq_data[e, 0], m.eq_data[e, 1]
            if j2 < 0 or abs(c0) > 1e-12 or np.any(np.abs(m.eq_data[e, 2:5]) > 1e-12) or c1 == 0:
                raise ValueError(f"{self.robot.description}: joint equality {e} must be q1 = c * q2 for PyBullet")
            a, b = self._pb_joint[pos_in_list[j1]], self._pb_joint[pos_in_list[j2]]
            gear = pb.createConstraint(self._rid, a, self._rid, b, pb.JOINT_GEAR, [0, 0, 1], [0, 0, 0], [0, 0, 0],
                                       physicsClientId=cid)
            pb.changeConstraint(gear, gearRatio=-1.0 / c1, maxForce=1e4, physicsClientId=cid)

        # Bodies whose gravity is not compensated get it as an external force (gravcomp < 1), see docstring.
        self._payload_body = mujoco.mj_name2id(m, obj.mjOBJ_BODY, scene.PAYLOAD_BODY)
        self._payload_mass = float(m.body_mass[self._payload_body]) if self._payload_body >= 0 else 0.0
        self._weighted_links = [(self._link[mj.mj_id2name(m, obj.mjOBJ_BODY, b)], b) for b in self._robot_bodies
                                if b != root and m.body_gravcomp[b] < 1.0]

        # End-effector site in its link's frame.
        site = self._id(obj.mjOBJ_SITE, self.robot.ee_site)
        site_body = m.site_bodyid[site]
        self._ee_link = self._link[mj.mj_id2name(m, obj.mjOBJ_BODY, site_body)]
        self._ee_offset = m.site_pos[site] - link_frame_offset(m, site_body)
        self._ee_rot = quat_to_mat(m.site_quat[site])

        self._build_static_scene(m, data, root)
        self._finger_links = [self._link[mj.mj_id2name(m, obj.mjOBJ_BODY, m.jnt_bodyid[j])] for j in grip_jnt]
        self._filter_collisions(m)
        self._camera = self._id(obj.mjOBJ_CAMERA, scene.CAMERA_NAME)
        self._cam_pos = data.cam_xpos.copy()
        self._cam_mat = data.cam_xmat.copy()
        self._znear = float(m.vis.map.znear * m.stat.extent)
        self._zfar = float(m.vis.map.zfar * m.stat.extent)
        self._q = np.zeros(n)
        self._qd = np.zeros(n)
        self._zeros = [0.0] * n
        self._obj_weight = (self._obj_mass * self._gravity).tolist()

    def _shape(self, m, gid: int, visual: bool) -> int:
        mj, cid = mujoco, self._client
        gtype, size = m.geom_type[gid], m.geom_size[gid]
        kw = {"rgbaColor": geom_rgba(m, gid).tolist()} if visual else {}
        create = pb.createVisualShape if visual else pb.createCollisionShape
        if gtype == mj.mjtGeom.mjGEOM_BOX:
            return create(pb.GEOM_BOX, halfExtents=size.tolist(), physicsClientId=cid, **kw)
        if gtype == mj.mjtGeom.mjGEOM_SPHERE:
            return create(pb.GEOM_SPHERE, radius=float(size[0]), physicsClientId=cid, **kw)
        if gtype == mj.mjtGeom.mjGEOM_CAPSULE:
            key = "length" if visual else "height"
            return create(pb.GEOM_CAPSULE, radius=float(size[0]), physicsClientId=cid, **{key: 2 * float(size[1])},
                          **kw)
        if gtype == mj.mjtGeom.mjGEOM_CYLINDER:
            key = "length" if visual else "height"
            return create(pb.GEOM_CYLINDER, radius=float(size[0]), physicsClientId=cid,
                          **{key: 2 * float(size[1])}, **kw)
        if gtype == mj.mjtGeom.mjGEOM_PLANE:
            if visual:   # a thin box: TinyRenderer draws boxes; an infinite plane (size 0) gets 10 m
                half = [float(s) if s > 0 else 5.0 for s in size[:2]] + [1e-3]
                return create(pb.GEOM_BOX, halfExtents=half, visualFramePosition=[0, 0, -1e-3], physicsClientId=cid,
                              **kw)
            return create(pb.GEOM_PLANE, physicsClientId=cid)
        name = mj.mj_id2name(m, mj.mjtObj.mjOBJ_GEOM, gid)
        raise ValueError(f"scene geom {name!r}: type {mj.mjtGeom(gtype).name} not supported by the PyBullet backend")

    def _build_static_scene(self, m, data, root: int) -> None:
        """Table/floor (geoms on the world body), the free object, and the goal marker (a visual-only body)."""
        mj, cid = mujoco, self._client
        obj = mj.mjtObj
        self._static = []
        for gid in np.flatnonzero(m.geom_bodyid == 0):
            col = self._shape(m, gid, visual=False) if geom_collides(m, gid) else -1
            vis = self._shape(m, gid, visual=True) if m.geom_group[gid] in VISIBLE_GEOM_GROUPS else -1
            body = pb.createMultiBody(0.0, col, vis, basePosition=m.geom_pos[gid].tolist(),
                                      baseOrientation=_xyzw(m.geom_quat[gid]), physicsClientId=cid)
            if col >= 0:
                f = m.geom_friction[gid]
                pb.changeDynamics(body, -1, lateralFriction=f[0], spinningFriction=f[1], rollingFriction=f[2],
                                  physicsClientId=cid)
            self._static.append((body, [int(gid)]))

        ob = self._id(obj.mjOBJ_BODY, scene.OBJECT_BODY)
        geoms = np.flatnonzero(m.geom_bodyid == ob)
        if len(geoms) != 1 or np.linalg.norm(m.body_ipos[ob]) > 1e-9 or np.linalg.norm(m.geom_pos[geoms[0]]) > 1e-9:
            raise ValueError(f"scene body {scene.OBJECT_BODY!r}: the PyBullet backend expects one geom centred on the "
                             f"body's centre of mass")
        g = int(geoms[0])
        self._obj_mass = float(m.body_mass[ob])
        self._obj = pb.createMultiBody(self._obj_mass, self._shape(m, g, visual=False), self._shape(m, g, visual=True),
                                       basePosition=data.xpos[ob].tolist(), baseOrientation=_xyzw(data.xquat[ob]),
                                       physicsClientId=cid)
        f = m.geom_friction[g]
        pb.changeDynamics(self._obj, -1, localInertiaDiagonal=m.body_inertia[ob].tolist(), lateralFriction=f[0],
                          spinningFriction=f[1], rollingFriction=f[2], linearDamping=0.0, angularDamping=0.0,
                          physicsClientId=cid)
        self._obj_geoms = [g]

        gb = self._id(obj.mjOBJ_BODY, scene.GOAL_BODY)
        gs = self._id(obj.mjOBJ_SITE, scene.GOAL_SITE)
        vis = pb.createVisualShape(pb.GEOM_SPHERE, radius=float(m.site_size[gs, 0]), rgbaColor=m.site_rgba[gs].tolist(),
                                   visualFramePosition=m.site_pos[gs].tolist(), physicsClientId=cid)
        self._goal_home = data.xpos[gb].copy()
        self._goal = pb.createMultiBody(0.0, -1, vis, basePosition=self._goal_home.tolist(), physicsClientId=cid)

    def _filter_collisions(self, m) -> None:
        """Apply MuJoCo's contype/conaffinity rule per pair of bodies (PyBullet's group/mask rule differs)."""
        def collide(ga: list[int], gb: list[int]) -> bool:
            return any((m.geom_contype[a] & m.geom_conaffinity[b]) or (m.geom_contype[b] & m.geom_conaffinity[a])
                       for a in ga for b in gb)

        robot_links = [(self._link[mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b)],
                        np.flatnonzero(m.geom_bodyid == b).tolist()) for b in self._robot_bodies]
        others = self._static + [(self._obj, self._obj_geoms)]
        for link, lg in robot_links:
            for body, og in others:
                if lg and not collide(lg, og):
                    pb.setCollisionFilterPair(self._rid, body, link, -1, 0, physicsClientId=self._client)
        for i, (a, ga) in enumerate(others):
            for b, gb_ in others[i + 1:]:
                if not collide(ga, gb_):
                    pb.setCollisionFilterPair(a, b, -1, -1, 0, physicsClientId=self._client)

    # --- state -------------------------------------------------------------------------------
    def _read_state(self) -> None:
        states = pb.getJointStates(self._rid, self._pb_joint, physicsClientId=self._client)
        for i, s in enumerate(states):
            self._q[i], self._qd[i] = s[0], s[1]

    def reset(self, arm_qpos: np.ndarray, gripper_width: float, object_pose: np.ndarray) -> None:
        cid = self._client
        # Bullet keeps contact manifolds (and warm-starts its solver from them) across resets, so an episode
        # would depend on the one before it. Moving the cube out of reach and running collision detection once
        # drops its manifolds; restoreState does not (measured: 2e-4 divergence without this, 0 with it).
        pb.resetBasePositionAndOrientation(self._obj, [0.0, 0.0, -10.0], [0, 0, 0, 1], physicsClientId=cid)
        pb.performCollisionDetection(physicsClientId=cid)
        q = np.array([self.model.qpos0[self.model.jnt_qposadr[j]] for j in self._jnt])
        q[self._arm] = arm_qpos
        q[self._grip] = gripper_width / len(self._grip)
        for j, v in zip(self._pb_joint, q):
            pb.resetJointState(self._rid, j, float(v), 0.0, physicsClientId=cid)
        pose = np.asarray(object_pose, dtype=float)
        pb.resetBasePositionAndOrientation(self._obj, pose[:3].tolist(), _xyzw(pose[3:]), physicsClientId=cid)
        pb.resetBaseVelocity(self._obj, [0, 0, 0], [0, 0, 0], physicsClientId=cid)
        self.set_goal_marker(self._goal_home)
        self.command(np.asarray(arm_qpos, float), gripper_width)
        self._read_state()

    def arm_qpos(self) -> np.ndarray:
        return self._q[self._arm].copy()

    def arm_qvel(self) -> np.ndarray:
        return self._qd[self._arm].copy()

    def gripper_width(self) -> float:
        return float(self._q[self._grip].sum())

    def _link_pose(self, link: int) -> tuple[np.ndarray, np.ndarray]:
        if link < 0:
            pos, quat = pb.getBasePositionAndOrientation(self._rid, physicsClientId=self._client)
        else:
            state = pb.getLinkState(self._rid, link, computeForwardKinematics=True, physicsClientId=self._client)
            pos, quat = state[4], state[5]
        return np.array(pos), np.array(pb.getMatrixFromQuaternion(quat)).reshape(3, 3)

    def ee_pose(self) -> np.ndarray:
        pos, rot = self._link_pose(self._ee_link)
        site_rot = rot @ self._ee_rot
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, site_rot.reshape(-1))
        return np.concatenate([pos + rot @ self._ee_offset, quat])

    def object_pose(self) -> np.ndarray:
        pos, quat = pb.getBasePositionAndOrientation(self._obj, physicsClientId=self._client)
        return np.concatenate([pos, _wxyz(quat)])

    def object_velocity(self) -> np.ndarray:
        lin, ang = pb.getBaseVelocity(self._obj, physicsClientId=self._client)
        return np.concatenate([lin, ang])

    def fingers_touch_object(self) -> bool:
        return all(pb.getContactPoints(self._rid, self._obj, link, -1, physicsClientId=self._client)
                   for link in self._finger_links)

    # --- control -----------------------------------------------------------------------------
    def command(self, arm_targets: np.ndarray, gripper_width: float) -> None:
        self._ctrl[self._arm_act] = arm_targets
        self._ctrl[self._grip_act] = gripper_width
        self._ctrl = np.clip(self._ctrl, self._ctrlrange[:, 0], self._ctrlrange[:, 1])

    def _implicit_terms(self, clamped: np.ndarray) -> np.ndarray:
        """A + dt * D of the module docstring, cached per pattern of force-clamped actuators."""
        key = clamped.tobytes()
        matrix = self._implicit_cache.get(key)
        if matrix is None:
            dt, kv = self.physics_dt, -self._bias[:, 2] * ~clamped
            matrix = np.diag(self._armature + dt * self._damping) + dt * (self._moment.T * kv) @ self._moment
            self._implicit_cache[key] = matrix
        return matrix

    def _physics_step(self) -> None:
        cid, rid = self._client, self._rid
        q, qd = self._q, self._qd
        moment, bias = self._moment, self._bias
        force = self._gain * self._ctrl + bias[:, 0] + bias[:, 1] * (moment @ q) + bias[:, 2] * (moment @ qd)
        clipped = np.minimum(np.maximum(force, self._force_lo), self._force_hi)
        clamped = clipped != force
        tau = moment.T @ clipped
        q_list, qd_list = q.tolist(), qd.tolist()
        # Everything but inertia: actuators, damping, Coriolis (world gravity is 0, see the module docstring) ...
        residual = tau - self._damping * qd - np.asarray(
            pb.calculateInverseDynamics(rid, q_list, qd_list, self._zeros, physicsClientId=cid))
        # ... and gravity on bodies that are not compensated, applied as external forces.
        for link, body in self._weighted_links:
            mass = self._link_mass(body)
            if mass <= 0.0:
                continue
            weight = (1.0 - self.model.body_gravcomp[body]) * mass * self._gravity
            com = pb.getLinkState(rid, link, computeForwardKinematics=True, physicsClientId=cid)[0]
            pb.applyExternalForce(rid, link, weight.tolist(), com, pb.WORLD_FRAME, physicsClientId=cid)
            jac = pb.calculateJacobian(rid, link, [0.0, 0.0, 0.0], q_list, qd_list, self._zeros,
                                       physicsClientId=cid)[0]
            residual += np.asarray(jac).T @ weight
        implicit = self._implicit_terms(clamped)
        mass_matrix = np.asarray(pb.calculateMassMatrix(rid, q_list, physicsClientId=cid))
        qacc = np.linalg.solve(mass_matrix + implicit, residual)
        torque = tau - self._damping * qd - implicit @ qacc
        pb.setJointMotorControlArray(rid, self._pb_joint, pb.TORQUE_CONTROL, forces=torque.tolist(),
                                     physicsClientId=cid)
        pos, _ = pb.getBasePositionAndOrientation(self._obj, physicsClientId=cid)
        pb.applyExternalForce(self._obj, -1, self._obj_weight, pos, pb.WORLD_FRAME, physicsClientId=cid)
        pb.stepSimulation(physicsClientId=cid)
        self._read_state()

    def _link_mass(self, body: int) -> float:
        return self._payload_mass if body == self._payload_body else float(self.model.body_mass[body])

    def step(self) -> None:
        for _ in range(self._substeps):
            self._physics_step()

    def set_goal_marker(self, position: np.ndarray) -> None:
        pb.resetBasePositionAndOrientation(self._goal, np.asarray(position, float).tolist(), (0, 0, 0, 1),
                                           physicsClientId=self._client)

    # --- kinematics --------------------------------------------------------------------------
    def forward_kinematics(self, arm_qpos: np.ndarray) -> np.ndarray:
        """Set the arm joints, read the site pose, put the joints (positions and velocities) back."""
        cid = self._client
        arm_joints = [self._pb_joint[i] for i in self._arm]
        for j, v in zip(arm_joints, arm_qpos):
            pb.resetJointState(self._rid, j, float(v), 0.0, physicsClientId=cid)
        pose = self.ee_pose()
        for j, i in zip(arm_joints, self._arm):
            pb.resetJointState(self._rid, j, float(self._q[i]), float(self._qd[i]), physicsClientId=cid)
        return pose

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
        if kind == "payload_mass":
            return self._payload_mass
        dof = self._arm[i]
        if kind in ("damping", "armature", "frictionloss"):
            return float(getattr(self, f"_{kind}")[dof])
        act = self._arm_act[i]
        return float(self._gain[act]) if kind == "kp" else float(-self._bias[act, 2])

    def set_parameter(self, name: str, value: float) -> None:
        kind, i = self._slot(name)
        value = float(value)
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"physical parameter {name!r} must be a finite number >= 0, got {value}")
        if kind == "payload_mass":
            self._payload_mass = value
            inertia = 0.4 * value * PAYLOAD_RADIUS ** 2
            link = self._link[mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_BODY, self._payload_body)]
            pb.changeDynamics(self._rid, link, mass=value, localInertiaDiagonal=[inertia] * 3,
                              physicsClientId=self._client)
            return
        dof = self._arm[i]
        self._implicit_cache.clear()
        if kind == "frictionloss":
            self._set_frictionloss(dof, value)
        elif kind in ("damping", "armature"):
            getattr(self, f"_{kind}")[dof] = value
        elif kind == "kp":   # position servo: force = kp * (ctrl - q) - kv * qdot
            self._gain[self._arm_act[i]] = value
            self._bias[self._arm_act[i], 1] = -value
        else:
            self._bias[self._arm_act[i], 2] = -value

    def _set_frictionloss(self, dof: int, value: float) -> None:
        """Coulomb friction as PyBullet's standard velocity motor to zero speed, at most `value` N*m."""
        self._frictionloss[dof] = value
        pb.setJointMotorControl2(self._rid, self._pb_joint[dof], pb.VELOCITY_CONTROL, targetVelocity=0.0,
                                 force=value, physicsClientId=self._client)

    # --- pixels ------------------------------------------------------------------------------
    def render(self, width: int, height: int, camera: str = scene.CAMERA_NAME) -> np.ndarray:
        if camera != scene.CAMERA_NAME:
            raise KeyError(f"unknown camera {camera!r}; the PyBullet backend renders {scene.CAMERA_NAME!r}")
        pos, rot = self._cam_pos[self._camera], self._cam_mat[self._camera].reshape(3, 3)
        # MuJoCo cameras look along their -z axis with +y up.
        view = pb.computeViewMatrix(pos.tolist(), (pos - rot[:, 2]).tolist(), rot[:, 1].tolist(),
                                    physicsClientId=self._client)
        proj = pb.computeProjectionMatrixFOV(float(self.model.cam_fovy[self._camera]), width / height, self._znear,
                                             self._zfar, physicsClientId=self._client)
        _, _, rgba, _, _ = pb.getCameraImage(width, height, view, proj, shadow=0, lightDirection=LIGHT_DIRECTION,
                                             renderer=pb.ER_TINY_RENDERER, physicsClientId=self._client)
        return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3].copy()

    def close(self) -> None:
        if self._client is not None and pb.isConnected(self._client):
            pb.disconnect(self._client)
        self._client = None
