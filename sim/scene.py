"""The one scene every task uses, built from the robot description with MjSpec: the arm on a table, one free
cube ("object"), a visual-only goal marker ("goal") and a fixed camera ("front").

PyBullet builds the same scene by reading this compiled model's geometry (table, object, camera pose), so the
names below are part of the interface: keep them stable.
"""
from __future__ import annotations

import numpy as np

from sim.robot import RobotConfig

TABLE_HEIGHT = 0.0                   # table top, world z (m): the robot description stands its base at the origin
TABLE_CENTER = (0.45, 0.0)           # table top centre, world xy (m)
TABLE_HALF_SIZE = (0.45, 0.6, 0.025)  # box half extents (m)
OBJECT_HALF_SIZE = 0.02              # the cube is 4 cm wide
OBJECT_MASS = 0.1                    # kg
OBJECT_FRICTION = (0.4, 0.005, 0.0001)   # low enough that a push at mid-height slides rather than tips the cube
GOAL_RADIUS = 0.02                   # visual marker only
# Where tasks put objects and goals: reachable with the gripper pointing down, in front of the arm.
WORKSPACE_LOW = (0.30, -0.25, TABLE_HEIGHT)
WORKSPACE_HIGH = (0.65, 0.25, TABLE_HEIGHT + 0.40)
CAMERA_NAME = "front"
CAMERA_POS = (0.95, 0.4, 0.5)
CAMERA_TARGET = (0.45, 0.0, 0.17)
CAMERA_FOVY = 50.0                   # degrees

# Names shared with the PyBullet backend.
TABLE_GEOM = "table"
OBJECT_BODY = "object"
OBJECT_GEOM = "object_geom"
OBJECT_JOINT = "object_joint"
GOAL_BODY = "goal"
GOAL_SITE = "goal"
PAYLOAD_BODY = "payload"             # body in the robot description that carries payload_mass (optional)


def camera_xyaxes(pos=CAMERA_POS, target=CAMERA_TARGET) -> np.ndarray:
    """The camera frame's x (right) and y (up) axes in world coordinates; the camera looks along its -z."""
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return np.concatenate([right, up])


def scene_spec(robot: RobotConfig, physics_dt: float = 0.002):
    """MjSpec of the scene: the robot description with table, object, goal,
    lights and camera. Compile with `.compile()`."""
    import mujoco

    # The robot description is the base spec (its names, defaults, tendons and actuators stay as written); the
    # scene is added to its world. The arm's base stands at the world origin on the table.
    spec = mujoco.MjSpec.from_file(str(robot.description))
    if spec.worldbody.first_body() is None:
        raise ValueError(f"{robot.description}: the robot description has no body under <worldbody>")
    spec.modelname = f"{robot.name}_scene"
    spec.option.timestep = physics_dt
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    # Elliptic friction cones with a high impratio keep a pinched cube from slipping (MuJoCo docs' advice
    # for grasping).
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0
    spec.visual.global_.offwidth = 1024
    spec.visual.global_.offheight = 1024
    spec.visual.quality.shadowsize = 0      # shadows cost a lot in software rendering

    world = spec.worldbody
    world.add_light(name="key", pos=(0.5, -0.5, 1.5), dir=(-0.1, 0.3, -1.0), type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
                    diffuse=(0.7, 0.7, 0.7), specular=(0.1, 0.1, 0.1), castshadow=False)
    world.add_light(name="fill", pos=(1.5, 0.5, 1.0), dir=(-1.0, -0.3, -0.6), type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
                    diffuse=(0.35, 0.35, 0.35), specular=(0.0, 0.0, 0.0), castshadow=False)
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=(2.0, 2.0, 0.1),
                   pos=(0.0, 0.0, TABLE_HEIGHT - 0.75), rgba=(0.35, 0.38, 0.42, 1.0), contype=0, conaffinity=0)
    world.add_geom(name=TABLE_GEOM, type=mujoco.mjtGeom.mjGEOM_BOX, size=TABLE_HALF_SIZE,
                   pos=(TABLE_CENTER[0], TABLE_CENTER[1], TABLE_HEIGHT - TABLE_HALF_SIZE[2]),
                   rgba=(0.62, 0.52, 0.40, 1.0), friction=(0.4, 0.005, 0.0001), contype=1, conaffinity=1)
    cam = world.add_camera(name=CAMERA_NAME, pos=CAMERA_POS, fovy=CAMERA_FOVY)
    cam.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
    cam.alt.xyaxes = camera_xyaxes()

    obj = world.add_body(name=OBJECT_BODY, pos=(0.5, 0.0, TABLE_HEIGHT + OBJECT_HALF_SIZE))
    obj.add_freejoint(name=OBJECT_JOINT)
    obj.add_geom(name=OBJECT_GEOM, type=mujoco.mjtGeom.mjGEOM_BOX, size=(OBJECT_HALF_SIZE,) * 3,
                 mass=OBJECT_MASS, friction=OBJECT_FRICTION, condim=4, rgba=(0.85, 0.15, 0.12, 1.0),
                 contype=1, conaffinity=1)

    goal = world.add_body(name=GOAL_BODY, pos=(0.5, 0.0, 0.2), mocap=True)
    goal.add_site(name=GOAL_SITE, type=mujoco.mjtGeom.mjGEOM_SPHERE, size=(GOAL_RADIUS, 0, 0),
                  rgba=(0.1, 0.8, 0.2, 0.5))
    return spec
