"""The simulated arm that system identification fits: sim/'s MuJoCo scene with named physical parameters.

Parameters are set through the MuJoCo backend's own `set_parameter` (sim.backends.mujoco_backend), so the
model sysid fits is exactly the one `sim/` trains in when it loads the resulting parameters file.

What joint data can identify (position servos: torque = kp (target - q) - kv qdot, joint damping d):
- kv and joint damping act identically (both oppose qdot), so only their sum is identifiable; the fit
  keeps kv at the description's value and attributes the rest to `damping/<joint>`.
- armature (reflected rotor inertia) given the link inertias of the description as priors, friction loss,
  kp, the payload mass (uncompensated gravity at the tool centre point) and the action latency.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

FIT_KINDS = ("damping", "armature", "frictionloss", "kp")
GLOBAL_FIT = ("payload_mass",)


@dataclass(frozen=True)
class Prior:
    """Search box and typical scale of one named parameter (the scale normalises sensitivities and steps)."""
    name: str
    nominal: float
    low: float
    high: float
    scale: float


def prior_for(name: str, nominal: float) -> Prior:
    kind = name.split("/")[0]
    if kind == "damping":
        return Prior(name, nominal, 0.0, max(10.0 * nominal, 20.0), max(nominal, 1.0))
    if kind == "armature":
        return Prior(name, nominal, 0.1 * nominal, max(10.0 * nominal, 0.5), max(nominal, 0.01))
    if kind == "frictionloss":
        return Prior(name, nominal, 0.0, max(10.0 * nominal, 5.0), 1.0)
    if kind in ("kp", "kv"):
        return Prior(name, nominal, 0.3 * nominal, 3.0 * nominal, nominal)
    if kind == "payload_mass":
        return Prior(name, nominal, 0.0, max(3.0, 3.0 * nominal), 0.5)
    raise KeyError(f"no prior for parameter {name!r}")


class ArmModel:
    """MjModels of the robot's scene for given parameter values, plus state and control layout helpers."""

    def __init__(self, robot, physics_dt: float = 0.002, base_params=None):
        from sim.backends.mujoco_backend import MuJoCoBackend
        from sim.params import apply_parameters, ENV_PARAMETERS, RobotParams

        self.robot = robot
        self.physics_dt = physics_dt
        self._backend = MuJoCoBackend(robot, control_dt=physics_dt, physics_dt=physics_dt)
        if base_params is not None:
            engine = RobotParams(base_params.robot, {n: p for n, p in base_params.parameters.items()
                                                     if n not in ENV_PARAMETERS}, base_params.source)
            apply_parameters(self._backend, engine, robot.name)
        self.base_values = {n: self._backend.get_parameter(n) for n in self._backend.parameter_names()}
        import mujoco

        m = self._backend.model
        self.nu = m.nu
        joint_ids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in robot.arm_joints]
        grip_ids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in robot.gripper_joints]
        self.arm_qadr = m.jnt_qposadr[joint_ids]
        self.arm_dadr = m.jnt_dofadr[joint_ids]
        self.grip_qadr = m.jnt_qposadr[grip_ids]
        by_joint = {int(m.actuator_trnid[a, 0]): a for a in range(m.nu)
                    if m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT}
        self.arm_actuators = np.array([by_joint[j] for j in joint_ids])
        self.gripper_actuator = next(a for a in range(m.nu) if a not in set(self.arm_actuators.tolist()))

    @property
    def base_model(self):
        return self._backend.model

    def parameter_names(self) -> list[str]:
        return self._backend.parameter_names()

    def spec(self):
        """The scene's MjSpec (what `model()` starts from), for sysid's ModelSequences."""
        from sim import scene

        return scene.scene_spec(self.robot, self.physics_dt)

    def model(self, values: dict[str, float]):
        """A fresh MjModel with the base values overridden by `values` (named parameters)."""
        for name, value in self.base_values.items():
            self._backend.set_parameter(name, value)
        for name, value in values.items():
            self._backend.set_parameter(name, float(value))
        return copy.copy(self._backend.model)

    def default_priors(self, joints: tuple[str, ...] | None = None, kinds: tuple[str, ...] = FIT_KINDS,
                       payload: bool = True) -> list[Prior]:
        joints = self.robot.arm_joints if joints is None else joints
        unknown = [j for j in joints if j not in self.robot.arm_joints]
        if unknown:
            raise KeyError(f"joint(s) {unknown} are not arm joints of {self.robot.name}: {list(self.robot.arm_joints)}")
        names = [f"{k}/{j}" for j in joints for k in kinds]
        if payload and "payload_mass" in self.base_values:
            names.append("payload_mass")
        return [prior_for(n, self.base_values[n]) for n in names]

    def initial_state(self, model, arm_qpos: np.ndarray, arm_qvel: np.ndarray | None = None,
                      gripper_width: float = 0.0) -> np.ndarray:
        """Full-physics state vector (mujoco.rollout's layout) with the arm at `arm_qpos`."""
        import mujoco

        data = mujoco.MjData(model)
        data.qpos[self.arm_qadr] = arm_qpos
        data.qpos[self.grip_qadr] = gripper_width / len(self.grip_qadr)
        if arm_qvel is not None:
            data.qvel[self.arm_dadr] = arm_qvel
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        state = np.empty(mujoco.mj_stateSize(model, spec))
        mujoco.mj_getState(model, data, state, spec)
        return state

    def controls(self, arm_targets: np.ndarray, gripper_width: float = 0.0) -> np.ndarray:
        """(T, nu) actuator controls from (T, n_arm) joint targets; the gripper holds `gripper_width`."""
        ctrl = np.zeros((len(arm_targets), self.nu))
        ctrl[:, self.arm_actuators] = arm_targets
        ctrl[:, self.gripper_actuator] = gripper_width
        return ctrl
