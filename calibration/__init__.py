"""System identification on mujoco.sysid with actively designed excitation, recording IO,
camera intrinsics and hand-eye calibration. Writes the robot parameters file that sim/ loads."""
