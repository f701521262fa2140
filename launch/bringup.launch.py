"""Everything for one run: `ros2 launch robot_rl bringup.launch.py bundle:=/path/to/bundle [robot:=sim]
[use_camera:=true] [record:=true]`.

robot:=sim starts sim_robot_node in place of the arm; robot:=real expects the arm's ros2_control stack to be
running already. The camera is for pixel policies; record writes /joint_states and the commands (rosbag2 MCAP).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("robot_rl")
    robot = LaunchConfiguration("robot")
    return LaunchDescription([
        DeclareLaunchArgument("bundle", description="policy bundle folder written by `robot-rl export`"),
        DeclareLaunchArgument("robot", default_value="sim", description="sim | real"),
        DeclareLaunchArgument("mode", default_value="policy", description="policy | planner"),
        DeclareLaunchArgument("command_interface", default_value="forward", description="forward | trajectory"),
        DeclareLaunchArgument("backend", default_value="mujoco", description="simulated robot: mujoco | pybullet"),
        DeclareLaunchArgument("task", default_value="reach", description="simulated robot's task"),
        DeclareLaunchArgument("robot_params", default_value="", description="simulated robot's parameters file"),
        DeclareLaunchArgument("use_camera", default_value="false", description="start camera_node (RealSense)"),
        DeclareLaunchArgument("record", default_value="false", description="record a rosbag2 (MCAP)"),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "sim_robot.launch.py"])),
            condition=IfCondition(PythonExpression(["'", robot, "' == 'sim'"])),
            launch_arguments={"backend": LaunchConfiguration("backend"), "task": LaunchConfiguration("task"),
                              "robot_params": LaunchConfiguration("robot_params")}.items()),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "camera.launch.py"])),
            condition=IfCondition(LaunchConfiguration("use_camera"))),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "policy.launch.py"])),
            launch_arguments={"bundle": LaunchConfiguration("bundle"), "mode": LaunchConfiguration("mode"),
                              "command_interface": LaunchConfiguration("command_interface")}.items()),
        Node(package="robot_rl", executable="recorder", name="recorder", output="screen",
             ros_arguments=["--enclave", "/robot_rl/recorder"],   # SROS2 enclave (docs/sros2.md)
             condition=IfCondition(LaunchConfiguration("record")),
             parameters=[PathJoinSubstitution([share, "config", "recorder.yaml"])]),
    ])
