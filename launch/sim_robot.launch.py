"""A simulated arm on the ROS 2 graph, standing in for a ros2_control robot:
`ros2 launch robot_rl sim_robot.launch.py backend:=mujoco params_file:=/path/to/robot_params.yaml`."""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("backend", default_value="mujoco", description="mujoco | pybullet"),
        DeclareLaunchArgument("task", default_value="reach", description="reach | push | pick"),
        DeclareLaunchArgument("robot_params", default_value="",
                              description="robot parameters file (the simulated robot's hidden physics); "
                                          "empty: nominal model"),
        DeclareLaunchArgument("publish_images", default_value="false",
                              description="publish /camera/color/image_raw for pixel policies"),
        DeclareLaunchArgument("sim_config",
                              default_value=PathJoinSubstitution([FindPackageShare("robot_rl"), "config",
                                                                  "sim_robot.yaml"]),
                              description="ROS 2 parameter file for sim_robot_node"),
        Node(package="robot_rl", executable="sim_robot_node", name="sim_robot", output="screen",
             parameters=[LaunchConfiguration("sim_config"),
                         {"backend": ParameterValue(LaunchConfiguration("backend"), value_type=str),
                          "task": ParameterValue(LaunchConfiguration("task"), value_type=str),
                          "params_file": ParameterValue(LaunchConfiguration("robot_params"), value_type=str),
                          "publish_images": ParameterValue(LaunchConfiguration("publish_images"),
                                                           value_type=bool)}]),
    ])
