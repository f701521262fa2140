"""robot_rl: world-model agents trained in simulation, exported to ONNX, deployed on ROS 2 arms.

Installs as a Python package and as a ROS 2 ament_python package (`colcon build`; setup.cfg puts the
console scripts in lib/robot_rl; `data_files` carries package.xml, the ament resource marker, launch files and
their parameter YAML into `share/robot_rl`).

  pip install .                      the robot computer: run a bundle over DDS or rclpy, record bags (no torch)
  pip install .[sim]                 + the simulated arm (sim_robot_node, `robot-rl deploy robot=sim`)
  pip install .[train]               + training and export (torch, dm_control suites, logs)
  pip install .[calibration]         + system identification and camera calibration
  pip install .[datasets]            + LeRobotDataset demos (format=lerobot)
  pip install .[view]                + the Rerun view (view=rerun, `robot-rl view`)
  pip install .[all,dev,realsense]   everything (what `make test` installs)

torch is not on PyPI's default index as a CPU build; `make` installs torch==2.13.0 before the rest.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "robot_rl"

# The robot computer's set: enough to run a bundle on a ROS 2 graph or over DDS, no torch.
RUNTIME = [
    "numpy>=1.26",
    "PyYAML>=6",
    "onnxruntime>=1.18",
    "cyclonedds>=0.10.5",
    "rosbags>=0.10",
    "mcap>=1.1",
]
SIM = ["mujoco>=3.5", "pybullet>=3.2.6", "gymnasium>=1.0"]
# Training needs the simulator, and dm_control for the `dmc:` suites of robot_rl/envs.py.
TRAIN = SIM + ["torch>=2.4", "onnx>=1.16", "onnxscript>=0.1", "tqdm>=4.66", "tensorboard>=2.16", "matplotlib>=3.8",
               "dm-control>=1.0.20"]
# Standard task suites for robot_rl/envs.py: Meta-World v3 (`mw:`) and panda-gym's goal-conditioned tasks
# (`gym:panda_gym:<id>`). metaworld 3.1 pins mujoco==3.3.0, so 3.0 (see constraints.txt).
SUITES = ["metaworld>=3.0,<3.1", "panda-gym>=3.0.7"]
CALIBRATION = SIM + ["scipy>=1.11", "mujoco[sysid]>=3.5", "opencv-python-headless>=4.8"]
# LeRobotDataset v3 read/write (robot_rl/lerobot_dataset.py): parquet and the mp4 video, not lerobot itself
# (lerobot 0.4.4 pins torch<2.11, opencv<4.13, rerun-sdk<0.27).
DATASETS = ["pyarrow>=15", "av>=12"]
# The Rerun view (hardware/rerun_view.py): view=rerun and `robot-rl view`; also on a robot computer.
VIEW = ["rerun-sdk>=0.24"]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="TD-MPC2 + MoDem agents from simulation to ROS 2 arms, with ONNX export and system identification",
    packages=find_packages(include=["robot_rl*", "sim*", "hardware*", "calibration*"]),
    package_data={"sim": ["assets/**/*", "robots/*.yaml"], "robot_rl": ["presets/*.yaml"]},
    include_package_data=True,
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("launch/config/*.yaml")),
        (f"share/{PACKAGE}/security", glob("launch/security/*.xml")),   # SROS2 governance + policy (docs/sros2.md)
    ],
    python_requires=">=3.10",
    install_requires=RUNTIME,
    extras_require={
        "robot": [],   # the plain install is the robot computer's; the name lets `pip install .[robot]` say so
        "sim": SIM,
        "train": TRAIN,
        "calibration": CALIBRATION,
        "all": sorted(set(SIM + TRAIN + CALIBRATION + SUITES + DATASETS + VIEW)),
        "datasets": DATASETS,
        "view": VIEW,
        "suites": SUITES,
        # Sweeps and remote collectors on Ray (robot_rl/sweep.py); [client] for `address=ray://host:port`.
        "distributed": ["ray[client]>=2.40"],
        "realsense": ["pyrealsense2>=2.54"],
        # rclpy, launch and launch_ros come from a ROS 2 installation (apt), not from PyPI.
        "ros": [],
        "dev": ["pytest>=8", "pytest-xdist>=3", "hypothesis>=6"],
    },
    entry_points={
        "console_scripts": [
            "robot-rl = robot_rl.cli:main",
            "policy_node = hardware.nodes.policy_node:main",
            "sim_robot_node = hardware.nodes.sim_robot_node:main",
            "camera_node = hardware.nodes.camera_node:main",
            "recorder = hardware.nodes.recorder_node:main",
        ],
    },
    zip_safe=False,
)
