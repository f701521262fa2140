"""What runs on the robot computer: ONNX bundle runtime, safety layer, node logic, transports
(rclpy, or DDS via cyclonedds with ROS 2 wire conventions), message types, drivers, recorder.

Never imports torch. Heavy optional imports (rclpy, pyrealsense2, sim/) stay inside the modules that use them.
"""
