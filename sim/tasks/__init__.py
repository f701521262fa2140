"""Arm tasks (reach, push, pick-and-place): what to randomise at reset, reward and success. Engine-independent."""
from sim.tasks.base import Task, TaskState
from sim.tasks.pick import PickTask
from sim.tasks.push import PushTask
from sim.tasks.reach import ReachTask

TASKS: dict[str, type[Task]] = {"reach": ReachTask, "push": PushTask, "pick": PickTask}

__all__ = ["TASKS", "Task", "TaskState", "ReachTask", "PushTask", "PickTask"]
