"""Suite-wide settings: software offscreen rendering, one BLAS/torch thread per xdist worker (2 cores in CI)."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# DDS stays on the loopback interface in every test: nodes now discover as ROS 2 does (SUBNET: multicast on the
# machine's network) unless told otherwise, and tests never send to the network. A test wanting another setup
# gives its processes their own CYCLONEDDS_URI.
if "CYCLONEDDS_URI" not in os.environ:
    from hardware.transport.dds import local_only_config

    os.environ["CYCLONEDDS_URI"] = local_only_config()
