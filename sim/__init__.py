"""Simulation: arm models, tasks, MuJoCo and PyBullet backends behind one Gymnasium API, scripted experts,
named physical parameters and domain randomisation.

Importing `sim` registers the Gymnasium ids `robot_rl/panda-<task>-v0` and `robot_rl/panda-<task>-sparse-v0`
(task: reach, push, pick); engines are imported only when an environment is made.
"""
import gymnasium as gym

TASK_NAMES = ("reach", "push", "pick")


def env_id(task: str, sparse: bool = False, robot: str = "panda") -> str:
    return f"robot_rl/{robot}-{task}{'-sparse' if sparse else ''}-v0"


def _register() -> None:
    for task in TASK_NAMES:
        for sparse in (False, True):
            name = env_id(task, sparse)
            if name not in gym.registry:
                gym.register(id=name, entry_point="sim.env:ArmEnv",
                             kwargs={"task": task, "reward": "sparse" if sparse else "dense"})


_register()
