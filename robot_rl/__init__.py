"""TD-MPC2 agents with MoDem demonstration bootstrapping, their training, evaluation and ONNX export.

Heavy imports (torch) happen in the modules that need them, never here.
"""
__version__ = "0.1.0"
