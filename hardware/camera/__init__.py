"""Camera drivers: RealSense colour + depth aligned to colour (``hardware.camera.realsense``) and a librealsense
software device that feeds the same driver from arrays (``hardware.camera.software_camera``).

pyrealsense2 (the ``[realsense]`` extra) is imported inside those modules' functions, never here.
"""
