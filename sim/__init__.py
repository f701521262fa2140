"""Simulation: arm models, tasks, MuJoCo and PyBullet backends behind one Gymnasium API, scripted experts,
named physical parameters and domain randomisation.

Importing `sim` registers the Gymnasium ids `robot_rl/<task>-v0`; engines are imported only when an
environment is made.
"""
