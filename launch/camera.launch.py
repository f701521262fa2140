"""A RealSense camera's colour, aligned depth and intrinsics: `ros2 launch robot_rl camera.launch.py serial:=...`."""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("serial", default_value="", description="camera serial number; empty: first found"),
        DeclareLaunchArgument("camera_config",
                              default_value=PathJoinSubstitution([FindPackageShare("robot_rl"), "config",
                                                                  "camera.yaml"]),
                              description="ROS 2 parameter file for camera_node"),
        Node(package="robot_rl", executable="camera_node", name="camera", output="screen",
             ros_arguments=["--enclave", "/robot_rl/camera"],   # SROS2 enclave (docs/sros2.md)
             parameters=[LaunchConfiguration("camera_config"),
                         {"serial": ParameterValue(LaunchConfiguration("serial"), value_type=str)}]),
    ])
