"""`view=rerun` on train and eval: the collector's steps shown in Rerun (hardware/rerun_view.py's RerunView):
each viewed environment's observation (camera, joints, tool point, goal), action, reward, success, and the
planner's chosen action sequence (its MPPI mean), on the `step` timeline. Training shows the first
`view_envs` environments; a viewer that is not running gets an .rrd file in the run folder instead."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class StepView:
    """A collector observer: `on_step` after every batched environment step."""

    def __init__(self, application: str, rrd: Path, env_info, envs: int, acting=None):
        from hardware.rerun_view import RerunView

        self.view = RerunView(application, rrd=rrd, obs_layout=env_info.obs_layout, joint_names=env_info.joint_names)
        self.envs = envs
        self.planning = acting if acting is not None and acting.agent.cfg.planner.plan else None  # AgentActing

    def on_step(self, step: int, envs: np.ndarray, obs: list[dict], actions: np.ndarray, rewards: list[float],
                successes: list[bool]) -> None:
        for row, env in enumerate(envs):
            if env >= self.envs:
                continue
            self.view.log_step(step, int(env), obs[row], actions[row], rewards[row], {"success": successes[row]})
            if self.planning is not None:  # the plan that chose this action (its MPPI mean)
                self.view.log_plan(step, int(env), self.planning.prev_mean[int(env)].cpu().numpy())

    def close(self) -> Path | None:
        return self.view.close()


def open_step_view(view: str, application: str, rrd: Path, env_info, envs: int, acting=None) -> StepView | None:
    from hardware.rerun_view import check_view

    check_view(view)
    return StepView(application, rrd, env_info, envs, acting) if view == "rerun" else None
