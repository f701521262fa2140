"""Run a policy bundle on a robot: `ros2 launch robot_rl policy.launch.py bundle:=/path/to/bundle`.

Starts policy_node with launch/config/policy.yaml (installed to share/robot_rl/config); the arm's ros2_control
stack (forward_position_controller or joint_trajectory_controller) must already be running.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("bundle", description="policy bundle folder written by `robot-rl export`"),
        DeclareLaunchArgument("mode", default_value="policy", description="policy | planner"),
        DeclareLaunchArgument("command_interface", default_value="forward",
                              description="forward (forward_command_controller) | trajectory "
                                          "(joint_trajectory_controller)"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([FindPackageShare("robot_rl"), "config",
                                                                  "policy.yaml"]),
                              description="ROS 2 parameter file for policy_node"),
        Node(package="robot_rl", executable="policy_node", name="policy", output="screen",
             ros_arguments=["--enclave", "/robot_rl/policy"],   # SROS2 enclave (docs/sros2.md)
             parameters=[LaunchConfiguration("params_file"),
                         {"bundle": ParameterValue(LaunchConfiguration("bundle"), value_type=str),
                          "mode": ParameterValue(LaunchConfiguration("mode"), value_type=str),
                          "command_interface": ParameterValue(LaunchConfiguration("command_interface"),
                                                              value_type=str)}]),
    ])
