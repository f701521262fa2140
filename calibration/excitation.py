"""Excitation trajectories for system identification, designed actively in the current simulator.

Trajectory: a band-limited Fourier series per joint (Swevers, Ganseman, Tukel, De Schutter, Van Brussel,
"Optimal robot excitation and identification", IEEE T-RA 13(5), 1997):

    qdot_i(t) = sum_l a_il cos(l w t) + b_il sin(l w t),   l = 1..L,  w = 2 pi f
    q_i(t)    = q0_i + sum_l a_il/(l w) sin(l w t) - b_il/(l w) (cos(l w t) - 1)

Periodic, starting and ending at q0 (the home pose) at rest: sum_l a_il = 0 (zero start velocity) and
sum_l l b_il = 0 (zero start acceleration) fix the first harmonic. Each joint's amplitude is then scaled to
the largest that keeps position (a window around q0 inside the joint range), velocity and acceleration within
limits, and the whole trajectory shrinks until no robot link comes within a margin of the table or object.

Choice of the coefficients, as ASID does (Memmel, Wagenmaker, Zhu, Fox, Gupta, "ASID: Active Exploration for
System Identification in Robotic Manipulation", ICLR 2024): maximise a Fisher-information criterion of the
unknown physical parameters in the current simulator. The criterion is D_s-optimal by default: the information
left on the parameters of interest (kp, armature, payload) once the nuisance parameters (joint damping, which
the servo's kv hides, and friction loss) are marginalised: it rewards the gravity loading and accelerations
that tell payload and armature apart from kp, not cheap information on damping. Sensitivities of what the fit
observes (joint positions; velocities only when the fit uses them) to each parameter come from finite
differences over batched MuJoCo rollouts (mujoco.rollout), and the search over coefficient shapes is a random
population followed by a (1+lambda) evolution strategy from its best member (one batch of rollouts per
generation).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calibration.arm_model import ArmModel, Prior


@dataclass(frozen=True)
class FourierTrajectory:
    joint_names: tuple[str, ...]
    q0: np.ndarray              # (J,) start and end pose, rad
    base_freq_hz: float
    a: np.ndarray               # (J, L) cosine velocity coefficients, rad/s
    b: np.ndarray               # (J, L) sine velocity coefficients, rad/s

    @property
    def period_s(self) -> float:
        return 1.0 / self.base_freq_hz

    def _terms(self, t: np.ndarray):
        w = 2 * np.pi * self.base_freq_hz
        lw = w * np.arange(1, self.a.shape[1] + 1)                 # (L,)
        phase = np.asarray(t, float)[:, None] * lw[None, :]       # (T, L)
        return lw, np.sin(phase), np.cos(phase)

    def position(self, t: np.ndarray) -> np.ndarray:
        lw, s, c = self._terms(t)
        return self.q0 + s @ (self.a / lw).T - (c - 1.0) @ (self.b / lw).T

    def velocity(self, t: np.ndarray) -> np.ndarray:
        _, s, c = self._terms(t)
        return c @ self.a.T + s @ self.b.T

    def acceleration(self, t: np.ndarray) -> np.ndarray:
        lw, s, c = self._terms(t)
        return -s @ (self.a * lw).T + c @ (self.b * lw).T

    def to_dict(self) -> dict:
        return {"joint_names": list(self.joint_names), "q0": self.q0.tolist(), "base_freq_hz": self.base_freq_hz,
                "a": self.a.tolist(), "b": self.b.tolist()}

    @classmethod
    def from_dict(cls, raw: dict, source: str = "<dict>") -> "FourierTrajectory":
        try:
            traj = cls(tuple(raw["joint_names"]), np.asarray(raw["q0"], float), float(raw["base_freq_hz"]),
                       np.asarray(raw["a"], float), np.asarray(raw["b"], float))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{source}: trajectory needs joint_names, q0, base_freq_hz, a, b ({err})") from None
        n = len(traj.joint_names)
        if traj.q0.shape != (n,) or traj.a.ndim != 2 or traj.a.shape[0] != n or traj.a.shape != traj.b.shape:
            raise ValueError(f"{source}: trajectory shapes q0 {traj.q0.shape}, a {traj.a.shape}, b {traj.b.shape} "
                             f"do not fit {n} joints")
        return traj


@dataclass(frozen=True)
class Limits:
    lower: np.ndarray           # (J,) position window, rad
    upper: np.ndarray
    velocity: np.ndarray        # (J,) rad/s
    acceleration: np.ndarray    # (J,) rad/s^2


def excitation_limits(robot, q0: np.ndarray, position_fraction: float = 0.25, velocity_fraction: float = 0.5,
                      acceleration_fraction: float = 0.5, margin: float = 0.1) -> Limits:
    """Limits from the robot config: a window of +-position_fraction of each joint's range around q0 (inside
    the range by `margin` rad) and fractions of the datasheet velocity/acceleration limits."""
    lo, hi = robot.lower + margin, robot.upper - margin
    half = position_fraction * (robot.upper - robot.lower)
    lower, upper = np.maximum(lo, q0 - half), np.minimum(hi, q0 + half)
    if np.any(q0 < lower - 1e-9) or np.any(q0 > upper + 1e-9):
        raise ValueError(f"start pose {q0.tolist()} is not inside the joint ranges minus a {margin} rad margin")
    return Limits(lower, upper, velocity_fraction * np.asarray(robot.velocity_limits),
                  acceleration_fraction * np.asarray(robot.acceleration_limits))


def shape_size(n_joints: int, n_harmonics: int) -> int:
    return n_joints * 2 * (n_harmonics - 1)


def trajectory_from_shape(shape: np.ndarray, joint_names: tuple[str, ...], q0: np.ndarray, base_freq_hz: float,
                          n_harmonics: int, limits: Limits, grid: int = 256) -> FourierTrajectory:
    """Coefficients of harmonics 2..L from `shape` (values in [-1, 1]); harmonic 1 from the rest-start
    constraints; each joint scaled to the largest amplitude within `limits`."""
    n = len(joint_names)
    free = np.asarray(shape, float).reshape(n, 2, n_harmonics - 1)
    orders = np.arange(2, n_harmonics + 1)
    a = np.concatenate([-free[:, 0].sum(axis=1, keepdims=True), free[:, 0]], axis=1)
    b = np.concatenate([-(free[:, 1] * orders).sum(axis=1, keepdims=True), free[:, 1]], axis=1)
    unit = FourierTrajectory(joint_names, q0, base_freq_hz, a, b)
    t = np.linspace(0.0, unit.period_s, grid, endpoint=False)
    dev, vel, acc = unit.position(t) - q0, unit.velocity(t), unit.acceleration(t)
    tiny = 1e-12
    scale = np.minimum(limits.velocity / np.maximum(np.abs(vel).max(0), tiny),
                       limits.acceleration / np.maximum(np.abs(acc).max(0), tiny))
    scale = np.minimum(scale, (limits.upper - q0) / np.maximum(dev.max(0), tiny))
    scale = np.minimum(scale, (q0 - limits.lower) / np.maximum(-dev.min(0), tiny))
    scale *= 0.98                      # the grid can miss the true extremum by a little
    return FourierTrajectory(joint_names, q0, base_freq_hz, a * scale[:, None], b * scale[:, None])


def shrink(traj: FourierTrajectory, factor: float | np.ndarray) -> FourierTrajectory:
    """The trajectory with every joint's (or, with a (J,) array, each joint's own) amplitude scaled."""
    f = np.broadcast_to(np.asarray(factor, float), (len(traj.joint_names),))[:, None]
    return FourierTrajectory(traj.joint_names, traj.q0, traj.base_freq_hz, traj.a * f, traj.b * f)


class CollisionChecker:
    """Is any moving robot geom within `margin` of a scene geom (table, object) along a trajectory?

    Joints not in the trajectory stay at q_rest. Kinematics plus MuJoCo's collision detection, with the
    margin added to the scene geoms so near misses count."""

    def __init__(self, arm: ArmModel, q_rest: np.ndarray, margin: float = 0.03):
        import mujoco

        self._mujoco = mujoco
        m = self.model = arm.model({})
        first = m.jnt_bodyid[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, arm.robot.arm_joints[0])]
        moving = np.zeros(m.nbody, bool)
        for body in range(m.nbody):           # bodies are ordered parents first
            moving[body] = body == first or (body > 0 and moving[m.body_parentid[body]])
        self._robot_geom = moving[m.geom_bodyid]
        m.geom_margin[~self._robot_geom] = margin
        self.data = mujoco.MjData(m)
        self._arm = arm
        self._q_rest = np.asarray(q_rest, float)

    def collides(self, traj: FourierTrajectory, sample_hz: float = 20.0) -> bool:
        mujoco, m, d = self._mujoco, self.model, self.data
        t = np.arange(0.0, traj.period_s, 1.0 / sample_hz)
        index = [self._arm.robot.arm_joints.index(j) for j in traj.joint_names]
        for q in traj.position(t):
            full = self._q_rest.copy()
            full[index] = q
            d.qpos[self._arm.arm_qadr] = full
            mujoco.mj_fwdPosition(m, d)
            for c in d.contact[:d.ncon]:
                if self._robot_geom[c.geom1] != self._robot_geom[c.geom2]:
                    return True
        return False


class TorqueChecker:
    """Does a trajectory, played as the experiment's held position commands in the nominal simulator, ask any
    arm servo for more than `fraction` of its force range?

    A position servo's command steps (kp times the step) saturate the actuator at speed, and a saturated
    actuator makes the simulated trajectory jump as the parameters change (measured on a generated arm: the
    fit's cost along the kp-damping valley jumped by 13 chi^2 where a saturation onset crossed a physics step,
    and was smooth with the force limits off), so the fit's optimum wanders and its linearised intervals do not
    cover. The margin leaves room for an arm whose kp or payload is above the nominal values."""

    def __init__(self, arm: ArmModel, model, experiment: "Experiment", q_rest: np.ndarray, fraction: float = 0.9):
        import mujoco

        if not 0 < fraction <= 1:
            raise ValueError(f"torque fraction must be in (0, 1], got {fraction}")
        self._arm, self._model, self._experiment = arm, model, experiment
        self._q_rest = np.asarray(q_rest, float)
        self._data = mujoco.MjData(model)
        self._state0 = arm.initial_state(model, self._q_rest)
        act = arm.arm_actuators
        self._gain, self._bias = model.actuator_gainprm[act, 0].copy(), model.actuator_biasprm[act, :3].copy()
        limited = model.actuator_forcelimited[act].astype(bool)
        self._limit = np.where(limited, fraction * np.abs(model.actuator_forcerange[act]).min(axis=1), np.inf)

    def peak_force(self, traj: "FourierTrajectory") -> np.ndarray:
        """(n_arm,) largest |force| each arm servo asks for (before its force range clamps it), N m."""
        from mujoco import rollout

        arm, m = self._arm, self._model
        ctrl = zoh_controls(arm, commands_for(traj, self._experiment, self._q_rest, arm.robot.arm_joints),
                            self._experiment, self._q_rest)
        state, _ = rollout.rollout(m, self._data, self._state0, ctrl)
        before = np.concatenate([self._state0[None], state[0, :-1]])     # the state each step's force acts on
        q, qd = before[:, 1 + arm.arm_qadr], before[:, 1 + m.nq + arm.arm_dadr]
        target = ctrl[:, arm.arm_actuators]
        force = self._gain * target + self._bias[:, 0] + self._bias[:, 1] * q + self._bias[:, 2] * qd
        return np.abs(force).max(axis=0)

    def saturating(self, traj: "FourierTrajectory") -> np.ndarray:
        """(n_traj_joints,) which of the trajectory's joints ask for more than the margin."""
        over = self.peak_force(traj) > self._limit
        return over[[self._arm.robot.arm_joints.index(j) for j in traj.joint_names]]

    def saturates(self, traj: "FourierTrajectory") -> bool:
        return bool(self.saturating(traj).any())


def make_safe(traj: FourierTrajectory, checker: CollisionChecker, factor: float = 0.8, tries: int = 12,
              torque: TorqueChecker | None = None):
    """Shrink until collision-free (all joints) and, with `torque`, inside the servos' force margin (only the
    joints that ask for too much, so the others keep their excitation); None when even a small one fails."""
    for _ in range(tries):
        if checker.collides(traj):
            traj = shrink(traj, factor)
            continue
        over = torque.saturating(traj) if torque is not None else np.zeros(len(traj.joint_names), bool)
        if not over.any():
            return traj
        traj = shrink(traj, np.where(over, factor, 1.0))
    return None


@dataclass
class Experiment:
    """How a trajectory is run: commands at command_hz, joint states observed at state_hz, for duration_s."""
    command_hz: float = 20.0
    state_hz: float = 100.0
    duration_s: float = 10.0
    gripper_width: float = 0.0
    position_noise: float = 1e-3          # expected observation noise, weights the information (rad)
    velocity_noise: float = 1e-2          # rad/s
    # What the fit's residual holds: positions only unless the fit runs with use_velocity=true (calibration.fit
    # Config.use_velocity). Information the fit never sees must not steer the design: with velocities counted,
    # the design maximised what velocities tell about armature and damping while the fit used positions.
    use_velocity: bool = False

    def command_times(self) -> np.ndarray:
        return np.arange(0.0, self.duration_s, 1.0 / self.command_hz)


def commands_for(traj: FourierTrajectory, experiment: Experiment, q_rest: np.ndarray,
                 arm_joints: tuple[str, ...]) -> np.ndarray:
    """(K, n_arm) joint targets at the command times; joints outside the trajectory hold q_rest. After the
    trajectory's whole periods the arm holds q0."""
    t = experiment.command_times()
    index = [arm_joints.index(j) for j in traj.joint_names]
    periods = np.floor(experiment.duration_s / traj.period_s)
    t_in = np.where(t < periods * traj.period_s, t, 0.0) if periods >= 1 else t
    targets = np.tile(np.asarray(q_rest, float), (len(t), 1))
    targets[:, index] = traj.position(t_in)
    return targets


def zoh_controls(arm: ArmModel, commands: np.ndarray, experiment: Experiment, hold: np.ndarray,
                 latency_steps: int = 0) -> np.ndarray:
    """(nstep, nu) physics-step controls: commands held between command times, `latency_steps` late."""
    nstep = int(round(experiment.duration_s / arm.physics_dt))
    k = np.floor(np.arange(nstep) * arm.physics_dt * experiment.command_hz + 1e-9).astype(int) - latency_steps
    targets = np.where((k >= 0)[:, None], commands[np.clip(k, 0, len(commands) - 1)], hold)
    return arm.controls(targets, experiment.gripper_width)


def fisher_information(arm: ArmModel, priors: list[Prior], trajectories: list[FourierTrajectory],
                       experiment: Experiment, q_rest: np.ndarray, rel_step: float = 0.02,
                       n_threads: int = 1) -> np.ndarray:
    """(n_traj, P, P) Fisher information S^T S of the observed joint positions and velocities (divided by their
    noise) w.r.t. each parameter in units of its prior scale, by forward differences at the priors' nominals."""
    import mujoco
    from mujoco import rollout

    nominal = {p.name: p.nominal for p in priors}
    models = [arm.model(nominal)]
    for p in priors:
        value = p.nominal + rel_step * p.scale
        if value > p.high:
            value = p.nominal - rel_step * p.scale
        models.append(arm.model({**nominal, p.name: value}))
    steps = np.array([0.0] + [m_value(arm, m, p) - p.nominal for m, p in zip(models[1:], priors)])
    state0 = arm.initial_state(models[0], q_rest)
    datas = [mujoco.MjData(models[0]) for _ in range(n_threads)]
    stride = max(1, int(round(1.0 / (experiment.state_hz * arm.physics_dt))))
    nq = models[0].nq
    pos_cols, vel_cols = 1 + arm.arm_qadr, 1 + nq + arm.arm_dadr
    out = []
    for traj in trajectories:
        ctrl = zoh_controls(arm, commands_for(traj, experiment, q_rest, arm.robot.arm_joints), experiment, q_rest)
        state, _ = rollout.rollout(models, datas, state0, ctrl)
        obs = state[:, stride - 1::stride, pos_cols] / experiment.position_noise
        if experiment.use_velocity:
            obs = np.concatenate([obs, state[:, stride - 1::stride, vel_cols] / experiment.velocity_noise], axis=2)
        obs = obs.reshape(len(models), -1)
        sens = (obs[1:] - obs[0]) / (steps[1:, None] / np.array([p.scale for p in priors])[:, None])
        out.append(sens @ sens.T)
    return np.asarray(out)


def m_value(arm: ArmModel, model, prior: Prior) -> float:
    """The value a model actually carries for a named parameter (reads it back through the backend layout)."""
    kind, _, joint = prior.name.partition("/")
    if kind == "payload_mass":
        import mujoco

        return float(model.body_mass[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "payload")])
    j = arm.robot.arm_joints.index(joint)
    if kind in ("damping", "armature", "frictionloss"):
        return float(getattr(model, f"dof_{kind}")[arm.arm_dadr[j]])
    if kind == "kp":
        return float(model.actuator_gainprm[arm.arm_actuators[j], 0])
    return float(-model.actuator_biasprm[arm.arm_actuators[j], 2])


def criterion(fim: np.ndarray, kind: str = "logdet", interest: np.ndarray | None = None) -> np.ndarray:
    """Per matrix, larger is more informative: D-optimal log det(F), E-optimal min eigenvalue, or D_s-optimal
    ("ds") log det of the information on the `interest` parameters (boolean mask) after the others are
    marginalised, the Schur complement F_ii - F_in F_nn^-1 F_ni (Atkinson, Donev, Tobias, "Optimum Experimental
    Designs", ch. 10). D-optimality over all parameters rewards the cheapest directions: a design that helps
    the barely identifiable damping (servo kv hides it) raises log det most, whatever it does to payload."""
    p = fim.shape[-1]
    ridge = 1e-9 * np.trace(fim, axis1=-2, axis2=-1)[..., None, None] / p * np.eye(p) + 1e-12 * np.eye(p)
    fim = fim + ridge
    if kind == "logdet":
        return np.linalg.slogdet(fim)[1]
    if kind == "min_eig":
        return np.linalg.eigvalsh(fim)[..., 0]
    if kind == "ds":
        keep = np.ones(p, bool) if interest is None else np.asarray(interest, bool)
        if keep.shape != (p,) or not keep.any():
            raise ValueError(f"criterion='ds': interest must mark 1..{p} of {p} parameters, got {keep.tolist()}")
        f_ii = fim[..., keep][..., keep, :]
        if keep.all():
            return np.linalg.slogdet(f_ii)[1]
        f_ni, f_nn = fim[..., keep][..., ~keep, :], fim[..., ~keep][..., ~keep, :]
        schur = f_ii - np.swapaxes(f_ni, -1, -2) @ np.linalg.solve(f_nn, f_ni)
        return np.linalg.slogdet(schur)[1]
    raise ValueError(f"criterion={kind!r}: expected 'logdet', 'min_eig' or 'ds'")


INTEREST_KINDS = ("damping", "armature", "frictionloss", "kp", "kv", "payload_mass")


def interest_mask(priors: list[Prior], kinds: tuple[str, ...]) -> np.ndarray:
    """Which priors a D_s design is for: those whose kind (the name before '/') is in `kinds`. Kinds not among
    the designed parameters are skipped (the default asks for armature also when only kp is designed)."""
    bad = [k for k in kinds if k not in INTEREST_KINDS]
    if bad:
        raise ValueError(f"unknown parameter kind(s) {bad}; expected some of {list(INTEREST_KINDS)}")
    mask = np.array([p.name.split("/")[0] in kinds for p in priors])
    if not mask.any():
        raise ValueError(f"none of the designed parameters {[p.name for p in priors]} is of a kind in {list(kinds)}")
    return mask


@dataclass
class DesignResult:
    trajectory: FourierTrajectory
    criterion: float
    random_criterion: float                      # best of the initial random population, for comparison
    history: list[float] = field(default_factory=list)   # best criterion after each generation
    evaluations: int = 0


def design(arm: ArmModel, priors: list[Prior], joint_names: tuple[str, ...], q_rest: np.ndarray,
           experiment: Experiment, limits: Limits, n_harmonics: int = 5, base_freq_hz: float = 0.2,
           population: int = 10, generations: int = 4, kind: str = "logdet", seed: int = 0,
           active: bool = True, checker: CollisionChecker | None = None, n_threads: int = 1,
           progress=None, interest: np.ndarray | None = None, torque_fraction: float | None = 0.9) -> DesignResult:
    """Active design (evolution strategy on the Fisher criterion from a random population) or, with
    active=False, one random feasible trajectory from the same sampler (the baseline at equal length and
    limits; it is the active design's first starting candidate). `interest`: the priors a kind="ds" design
    is for (boolean mask, see interest_mask); the others are nuisance parameters. `torque_fraction`: every
    trajectory is shrunk until no servo asks for more than this share of its force range in the nominal
    simulator (TorqueChecker; None: no torque check)."""
    rng = np.random.default_rng(seed)
    index = [arm.robot.arm_joints.index(j) for j in joint_names]
    q0 = np.asarray(q_rest, float)[index]
    dim = shape_size(len(joint_names), n_harmonics)
    checker = checker or CollisionChecker(arm, q_rest)
    torque = None
    if torque_fraction is not None:
        torque = TorqueChecker(arm, arm.model({p.name: p.nominal for p in priors}), experiment, q_rest,
                               torque_fraction)
    evaluations = 0

    def build(shape):
        traj = trajectory_from_shape(shape, joint_names, q0, base_freq_hz, n_harmonics, limits)
        return make_safe(traj, checker, torque=torque)

    def score(shapes: np.ndarray) -> np.ndarray:
        nonlocal evaluations
        trajs = [build(s) for s in shapes]
        values = np.full(len(shapes), -np.inf)
        ok = [i for i, t in enumerate(trajs) if t is not None]
        if ok:
            fims = fisher_information(arm, priors, [trajs[i] for i in ok], experiment, q_rest, n_threads=n_threads)
            values[ok] = criterion(fims, kind, interest)
        evaluations += len(shapes)
        return values

    if not active:
        for _ in range(50):
            traj = build(rng.uniform(-1, 1, dim))
            if traj is not None:
                fim = fisher_information(arm, priors, [traj], experiment, q_rest, n_threads=n_threads)
                value = float(criterion(fim, kind, interest)[0])
                return DesignResult(traj, value, value, [value], 1)
        raise RuntimeError("no collision-free random excitation found in 50 draws; lower position_fraction")

    # The first draw is design=random's trajectory, so the active design starts from (and must beat) it.
    init = rng.uniform(-1, 1, (max(population, 5), dim))
    values = score(init)
    i = int(np.argmax(values))
    best_x, best_f = init[i].copy(), float(values[i])
    if not np.isfinite(best_f):
        raise RuntimeError("no collision-free excitation found; lower position_fraction")
    history = [best_f]
    # (1+lambda) evolution strategy around the best shape with the 1/5-success step rule (Rechenberg): every
    # generation is one batch of rollouts and the best never gets worse. Differential evolution from a
    # population this small over 2 J (L-1) coefficients almost never produced a better trial, so the
    # "active" design returned its best random start.
    step = 0.3
    for generation in range(max(generations, 1)):
        trials = np.clip(best_x + step * rng.standard_normal((population, dim)), -1.0, 1.0)
        values = score(trials)
        i = int(np.argmax(values))
        if values[i] > best_f:
            best_x, best_f = trials[i].copy(), float(values[i])
        success = float(np.mean(values > history[-1]))
        step = float(np.clip(step * (1.5 if success > 0.2 else 0.6), 0.02, 1.0))
        history.append(best_f)
        if progress is not None:
            progress(generation + 1, best_f)
    return DesignResult(build(best_x), best_f, history[0], history, evaluations)
