"""Excitation design: Fourier trajectories inside the limits, collision check against the table, Fisher
information from batched MuJoCo rollouts, and the active design beating random draws on its criterion."""
import numpy as np
import pytest

from calibration import excitation as ex
from calibration.arm_model import ArmModel
from sim.robot import load_robot


@pytest.fixture(scope="module")
def arm():
    return ArmModel(load_robot("panda"))


@pytest.fixture(scope="module")
def home(arm):
    return np.array(arm.robot.home_qpos)


@pytest.mark.parametrize("seed", range(5))
def test_trajectory_rests_at_home_and_stays_inside_limits(arm, home, seed):
    robot = arm.robot
    limits = ex.excitation_limits(robot, home)
    shape = np.random.default_rng(seed).uniform(-1, 1, ex.shape_size(robot.n_arm, 5))
    traj = ex.trajectory_from_shape(shape, robot.arm_joints, home, 0.2, 5, limits)
    ends = np.array([0.0, traj.period_s])
    np.testing.assert_allclose(traj.position(ends), [home, home], atol=1e-9)
    np.testing.assert_allclose(traj.velocity(ends), 0.0, atol=1e-9)
    np.testing.assert_allclose(traj.acceleration(ends), 0.0, atol=1e-9)
    t = np.linspace(0.0, traj.period_s, 4001)
    pos, vel, acc = traj.position(t), traj.velocity(t), traj.acceleration(t)
    assert np.all(pos >= limits.lower - 1e-4) and np.all(pos <= limits.upper + 1e-4)
    assert np.all(np.abs(vel) <= limits.velocity * 1.001)
    assert np.all(np.abs(acc) <= limits.acceleration * 1.001)
    # Each joint is scaled up to its tightest limit, so every joint is excited as much as allowed.
    ratio = np.maximum.reduce([np.abs(vel).max(0) / limits.velocity, np.abs(acc).max(0) / limits.acceleration,
                               (pos.max(0) - home) / (limits.upper - home), (home - pos.min(0)) / (home - limits.lower)])
    assert np.all(ratio > 0.95)


def test_trajectory_file_round_trip_and_errors(arm, home):
    limits = ex.excitation_limits(arm.robot, home)
    traj = ex.trajectory_from_shape(np.linspace(-1, 1, ex.shape_size(7, 3)), arm.robot.arm_joints, home, 0.25, 3,
                                    limits)
    back = ex.FourierTrajectory.from_dict(traj.to_dict())
    t = np.linspace(0, 4, 50)
    np.testing.assert_allclose(back.position(t), traj.position(t))
    raw = traj.to_dict()
    raw["q0"] = raw["q0"][:3]
    with pytest.raises(ValueError, match="x.yaml: trajectory shapes"):
        ex.FourierTrajectory.from_dict(raw, "x.yaml")


def test_collision_checker_catches_a_swing_into_the_table_and_shrinking_fixes_it(arm, home):
    checker = ex.CollisionChecker(arm, home)
    # Shoulder (joint 2) swings from home to +1.6 rad: the hand goes through the table.
    swing = ex.FourierTrajectory(("panda_joint2",), home[[1]], 0.2, np.zeros((1, 1)),
                                 np.array([[2.4 * 2 * np.pi * 0.2 / 2]]))
    assert checker.collides(swing)
    safe = ex.make_safe(swing, checker)
    assert safe is not None and not checker.collides(safe)
    assert np.abs(safe.b).max() < np.abs(swing.b).max()
    small = ex.shrink(swing, 0.05)
    assert not checker.collides(small)


def test_fisher_information_grows_with_motion(arm, home):
    joints = ("panda_joint2", "panda_joint4")
    priors = arm.default_priors(joints, ("armature", "kp"), payload=True)
    experiment = ex.Experiment(duration_s=3.0)
    still = ex.FourierTrajectory(joints, home[[1, 3]], 0.25, np.zeros((2, 3)), np.zeros((2, 3)))
    limits = ex.Limits(*(getattr(ex.excitation_limits(arm.robot, home), f)[[1, 3]]
                         for f in ("lower", "upper", "velocity", "acceleration")))
    moving = ex.trajectory_from_shape(np.random.default_rng(0).uniform(-1, 1, ex.shape_size(2, 3)), joints,
                                      home[[1, 3]], 0.25, 3, limits)
    fims = ex.fisher_information(arm, priors, [still, moving], experiment, home)
    assert fims.shape == (2, 5, 5)
    np.testing.assert_allclose(fims, np.transpose(fims, (0, 2, 1)))
    assert np.linalg.eigvalsh(fims[1]).min() > 0
    # Armature only shows when the joint accelerates.
    armature = [p.name for p in priors].index("armature/panda_joint2")
    assert fims[1][armature, armature] > 100 * fims[0][armature, armature]
    logdet = ex.criterion(fims)
    assert logdet[1] > logdet[0]
    assert ex.criterion(fims, "min_eig")[1] > ex.criterion(fims, "min_eig")[0]


def test_active_design_is_more_informative_than_random_draws(arm, home):
    joints = ("panda_joint2", "panda_joint4")
    priors = arm.default_priors(joints, ("armature", "kp"), payload=True)
    experiment = ex.Experiment(duration_s=3.0)
    full = ex.excitation_limits(arm.robot, home)
    limits = ex.Limits(full.lower[[1, 3]], full.upper[[1, 3]], full.velocity[[1, 3]], full.acceleration[[1, 3]])
    checker = ex.CollisionChecker(arm, home)
    kwargs = dict(n_harmonics=3, base_freq_hz=1 / 3, checker=checker)
    active = ex.design(arm, priors, joints, home, experiment, limits, population=6, generations=3, seed=0, **kwargs)
    random = [ex.design(arm, priors, joints, home, experiment, limits, active=False, seed=s, **kwargs).criterion
              for s in range(4)]
    assert active.history == sorted(active.history)
    # The search improves on its best starting candidate (it used to return it: design=random seed=0's draw).
    assert active.criterion > active.random_criterion
    assert active.criterion > max(random)
    assert active.random_criterion >= random[0]            # design=random seed=0 is one of its starts
    assert not checker.collides(active.trajectory)


def test_ds_criterion_is_the_information_left_on_the_parameters_of_interest():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(40, 4))
    fim = s.T @ s
    interest = np.array([True, False, True, False])
    # log det of the Schur complement = -log det of the interest block of the covariance F^-1.
    marginal = np.linalg.inv(fim)[np.ix_(interest, interest)]
    assert ex.criterion(fim, "ds", interest) == pytest.approx(-np.linalg.slogdet(marginal)[1], rel=1e-6)
    # More information on a nuisance parameter alone raises D-optimality but not D_s: nuisance directions
    # that are not confounded with the parameters of interest do not help them.
    more_nuisance = fim.copy()
    more_nuisance[1, 1] += 1e6
    assert ex.criterion(more_nuisance, "logdet") > ex.criterion(fim, "logdet") + 5
    confounded = ex.criterion(fim, "ds", interest)
    assert ex.criterion(more_nuisance, "ds", interest) >= confounded - 1e-9
    decoupled = fim.copy()
    decoupled[1, :], decoupled[:, 1] = 0.0, 0.0
    decoupled[1, 1] = fim[1, 1]
    bigger = decoupled.copy()
    bigger[1, 1] *= 1e4
    assert ex.criterion(bigger, "ds", interest) == pytest.approx(ex.criterion(decoupled, "ds", interest))
    with pytest.raises(ValueError, match="criterion='ds': interest must mark"):
        ex.criterion(fim, "ds", np.zeros(4, bool))


def test_interest_mask_names_bad_kinds(arm):
    priors = arm.default_priors(("panda_joint4",), ("kp",), payload=True)
    np.testing.assert_array_equal(ex.interest_mask(priors, ("kp", "armature", "payload_mass")), [True, True])
    with pytest.raises(ValueError, match=r"unknown parameter kind\(s\) \['inertia'\]"):
        ex.interest_mask(priors, ("inertia",))
    with pytest.raises(ValueError, match="none of the designed parameters"):
        ex.interest_mask(priors, ("armature",))


def test_information_counts_only_what_the_fit_observes(arm, home):
    # The fit's residual holds positions unless use_velocity=true; velocities would add information the fit
    # never uses (armature shows far more in velocities than in positions behind a stiff servo).
    joints = ("panda_joint4",)
    priors = arm.default_priors(joints, ("armature", "kp"), payload=False)
    full = ex.excitation_limits(arm.robot, home)
    limits = ex.Limits(full.lower[[3]], full.upper[[3]], full.velocity[[3]], full.acceleration[[3]])
    traj = ex.trajectory_from_shape(np.random.default_rng(1).uniform(-1, 1, ex.shape_size(1, 3)), joints,
                                    home[[3]], 0.5, 3, limits)
    positions = ex.fisher_information(arm, priors, [traj], ex.Experiment(duration_s=2.0), home)[0]
    both = ex.fisher_information(arm, priors, [traj], ex.Experiment(duration_s=2.0, use_velocity=True), home)[0]
    assert np.linalg.eigvalsh(both - positions).min() > -1e-6 * np.abs(both).max()     # velocities add
    armature = [p.name for p in priors].index("armature/panda_joint4")
    assert both[armature, armature] > 2 * positions[armature, armature]


def test_ds_design_raises_armature_and_payload_information_on_generated_arms(arm, home):
    # The design is made in the nominal simulator; what counts is the information on the arm it will run on.
    # Measured on generated arms 0 and 1 (calibration.hidden_arms), with the torque check: D_s on (armature,
    # payload) 2.30 -> 2.46 and 1.66 -> 1.77 over the starting candidate (design=random seed=0).
    import dataclasses

    from calibration import hidden_arms

    joints = ("panda_joint4",)
    priors = arm.default_priors(joints, ("damping", "armature", "kp"), payload=True)
    interest = ex.interest_mask(priors, ("armature", "payload_mass"))
    experiment = ex.Experiment(duration_s=2.0)
    full = ex.excitation_limits(arm.robot, home)
    limits = ex.Limits(full.lower[[3]], full.upper[[3]], full.velocity[[3]], full.acceleration[[3]])
    kwargs = dict(n_harmonics=3, base_freq_hz=0.5, checker=ex.CollisionChecker(arm, home), seed=0, kind="ds",
                  interest=interest)
    start = ex.design(arm, priors, joints, home, experiment, limits, active=False, **kwargs)
    designed = ex.design(arm, priors, joints, home, experiment, limits, population=4, generations=2, **kwargs)
    assert designed.criterion > designed.random_criterion >= start.criterion
    for seed in (0, 1):
        hidden = hidden_arms.draw(seed, arm.robot)
        truth = [dataclasses.replace(p, nominal=hidden.values[p.name]) for p in priors]
        fims = ex.fisher_information(arm, truth, [start.trajectory, designed.trajectory], experiment, home)
        on_arm = ex.criterion(fims, "ds", interest)
        assert on_arm[1] > on_arm[0] + 0.05, (seed, on_arm)


def test_torque_check_shrinks_trajectories_that_saturate_the_servos(arm, home):
    # Command steps of a fast trajectory ask the position servo for more than its force range; the design
    # shrinks such trajectories, since a saturating actuator makes the fit's cost jump between parameter values.
    joints = ("panda_joint2", "panda_joint4")
    full = ex.excitation_limits(arm.robot, home, velocity_fraction=0.9, acceleration_fraction=0.9)
    limits = ex.Limits(full.lower[[1, 3]], full.upper[[1, 3]], full.velocity[[1, 3]], full.acceleration[[1, 3]])
    experiment = ex.Experiment(duration_s=2.0)
    fast = ex.trajectory_from_shape(np.random.default_rng(3).uniform(-1, 1, ex.shape_size(2, 3)), joints,
                                    home[[1, 3]], 0.5, 3, limits)
    torque = ex.TorqueChecker(arm, arm.model({}), experiment, home, fraction=0.7)
    force_range = arm.base_model.actuator_forcerange[arm.arm_actuators, 1]
    assert torque.saturates(fast) and np.any(torque.peak_force(fast) > force_range)
    safe = ex.make_safe(fast, ex.CollisionChecker(arm, home), torque=torque)
    assert safe is not None and not torque.saturates(safe)
    assert np.all(torque.peak_force(safe) <= 0.7 * force_range + 1e-9)
    assert np.abs(safe.a).max() < np.abs(fast.a).max()
    # Only the joints that asked for too much were shrunk.
    ratio = np.abs(safe.a).max(axis=1) / np.abs(fast.a).max(axis=1)
    assert np.any(ratio < 1.0) and torque.saturating(fast)[ratio == 1.0].sum() == 0
    with pytest.raises(ValueError, match="torque fraction must be in"):
        ex.TorqueChecker(arm, arm.model({}), experiment, home, fraction=1.5)
