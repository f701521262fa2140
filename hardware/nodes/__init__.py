"""ROS 2 nodes (console scripts, also `ros2 run robot_rl <node>`), each written once against
hardware/transport/base.Node and started by hardware.transport.run_node on rclpy or DDS."""
