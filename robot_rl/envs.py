"""Environments from a task string, all behind one Gymnasium interface whose observations are dicts
{"state": float32 (D,)} / {"pixels": uint8 (C, H, W)} / both, and whose actions lie in [-1, 1]:

- `panda-reach`, `panda-pick-sparse`, ...: the sim/ tasks (`robot_rl/<task>-v0`, registered by `import sim`);
- `gym:<id>`: any Gymnasium id with a Box action space (e.g. `gym:Pendulum-v1`);
- `dmc:<domain>-<task>`: a DeepMind Control Suite task (dm_control), state flattened, action repeat 2
  (as TD-MPC2 uses for DMControl), 500 agent steps per episode.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

OBS_TYPES = ("state", "pixels", "state+pixels")


@dataclass
class EnvInfo:
    """What the agent, checkpoints and the exporter need to know about an environment."""
    task: str
    obs_type: str
    obs_spec: dict[str, tuple[tuple[int, ...], str]]  # modality -> (shape, numpy dtype name)
    action_dim: int
    action_low: list[float]        # the environment's own action bounds; agent actions in [-1, 1] map onto them
    action_high: list[float]
    episode_length: int
    control_hz: float | None = None
    robot: str | None = None
    joint_names: list[str] = field(default_factory=list)
    obs_layout: list[tuple[str, int]] | None = None  # named slices of the state vector (sim tasks)
    frame_stack: int = 1           # pixels: the last k camera frames stacked along channels (robot_rl/frame_stack.py)

    def as_dict(self) -> dict:
        return {"task": self.task, "obs_type": self.obs_type,
                "obs_spec": {k: {"shape": list(s), "dtype": d} for k, (s, d) in self.obs_spec.items()},
                "action_dim": self.action_dim, "action_low": self.action_low, "action_high": self.action_high,
                "episode_length": self.episode_length, "control_hz": self.control_hz, "robot": self.robot,
                "joint_names": self.joint_names,
                "obs_layout": [list(x) for x in self.obs_layout] if self.obs_layout is not None else None,
                "frame_stack": self.frame_stack}

    @staticmethod
    def from_dict(d: dict) -> "EnvInfo":
        return EnvInfo(task=d["task"], obs_type=d["obs_type"],
                       obs_spec={k: (tuple(v["shape"]), v["dtype"]) for k, v in d["obs_spec"].items()},
                       action_dim=d["action_dim"], action_low=list(d["action_low"]),
                       action_high=list(d["action_high"]), episode_length=d["episode_length"],
                       control_hz=d.get("control_hz"), robot=d.get("robot"), joint_names=list(d.get("joint_names", [])),
                       obs_layout=[(str(n), int(s)) for n, s in d["obs_layout"]] if d.get("obs_layout") else None,
                       frame_stack=int(d.get("frame_stack", 1)))

    @property
    def model_obs_spec(self) -> dict[str, tuple[int, ...]]:
        return {k: shape for k, (shape, _) in self.obs_spec.items()}


class DictObs(gym.ObservationWrapper):
    """Observations as {"state": ...} / {"pixels": ...} dicts, state as float32."""

    def __init__(self, env: gym.Env, obs_type: str):
        super().__init__(env)
        self.obs_type = obs_type
        space = env.observation_space
        if isinstance(space, gym.spaces.Dict):
            spaces = dict(space.spaces)
        elif obs_type == "pixels":
            spaces = {"pixels": space}
        else:
            spaces = {"state": space}
        if "state" in spaces:
            s = spaces["state"]
            if not isinstance(s, gym.spaces.Box) or len(s.shape) != 1:
                raise ValueError(f"state observations must be a flat Box, got {s}")
            spaces["state"] = gym.spaces.Box(-np.inf, np.inf, s.shape, np.float32)
        self.observation_space = gym.spaces.Dict(spaces)

    def observation(self, obs):
        if not isinstance(obs, dict):
            obs = {"pixels" if self.obs_type == "pixels" else "state": obs}
        return {k: (np.asarray(v, dtype=np.float32) if k == "state" else np.asarray(v)) for k, v in obs.items()}


class DMCEnv(gym.Env):
    """A dm_control suite task as a Gymnasium Env: flattened state (and/or 64x64 pixels from camera 0),
    action repeat, truncation after `episode_length` agent steps, no terminal states."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, domain: str, task: str, obs_type: str = "state", action_repeat: int = 2,
                 render_size: int = 64, seed: int | None = None):
        from dm_control import suite

        if (domain, task) not in suite.ALL_TASKS:
            raise ValueError(f"dmc:{domain}-{task}: not a dm_control suite task")
        self._suite, self._domain, self._task = suite, domain, task
        self._env = suite.load(domain, task, task_kwargs={"random": seed})
        self.obs_type, self.action_repeat, self.render_size = obs_type, action_repeat, render_size
        spec = self._env.action_spec()
        self.action_space = gym.spaces.Box(spec.minimum.astype(np.float32), spec.maximum.astype(np.float32))
        dim = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
        state = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        pixels = gym.spaces.Box(0, 255, (3, render_size, render_size), np.uint8)
        self.observation_space = {"state": state, "pixels": pixels,
                                  "state+pixels": gym.spaces.Dict({"state": state, "pixels": pixels})}[obs_type]
        self.episode_length = int(round(self._env._step_limit)) // action_repeat if np.isfinite(
            self._env._step_limit) else 500
        self._steps = 0

    def _obs(self, time_step):
        state = np.concatenate([np.asarray(v, dtype=np.float32).ravel() for v in time_step.observation.values()])
        if self.obs_type == "state":
            return state
        pix = self._env.physics.render(self.render_size, self.render_size, camera_id=0).transpose(2, 0, 1).copy()
        return pix if self.obs_type == "pixels" else {"state": state, "pixels": pix}

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self._env = self._suite.load(self._domain, self._task, task_kwargs={"random": seed})
        self._steps = 0
        return self._obs(self._env.reset()), {}

    def step(self, action):
        reward = 0.0
        for _ in range(self.action_repeat):
            ts = self._env.step(np.asarray(action, dtype=np.float64))
            reward += ts.reward or 0.0
            if ts.last():
                break
        self._steps += 1
        return self._obs(ts), reward, False, self._steps >= self.episode_length or ts.last(), {}

    def render(self):
        return self._env.physics.render(self.render_size, self.render_size, camera_id=0)


def make_env(task: str, obs_type: str = "state", seed: int | None = None, frame_stack: int = 1,
             **kwargs) -> tuple[gym.Env, EnvInfo]:
    """An environment with dict observations and actions rescaled to [-1, 1], and its EnvInfo.
    `frame_stack` > 1 stacks that many camera frames (pixels only; state passes through)."""
    if obs_type not in OBS_TYPES:
        raise ValueError(f"obs={obs_type!r}: expected one of {OBS_TYPES}")
    os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering without a display (read at mujoco import)
    robot, joint_names, control_hz, layout = None, [], None, None
    if task.startswith("gym:"):
        env = gym.make(task[4:], **kwargs)
        if obs_type != "state":
            raise ValueError(f"task={task!r}: gym: tasks support obs=state only")
        length = env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else 1000
    elif task.startswith("dmc:"):
        domain, _, name = task[4:].partition("-")
        env = DMCEnv(domain, name.replace("-", "_"), obs_type=obs_type, seed=seed, **kwargs)
        length = env.episode_length
    else:
        import sim  # registers the robot_rl/<task>-v0 ids

        env_id = f"robot_rl/{task}-v0"
        if env_id not in gym.registry:
            known = sorted(k[len("robot_rl/"):-3] for k in gym.registry if k.startswith("robot_rl/"))
            raise ValueError(f"task={task!r}: unknown; expected one of {known}, gym:<id> or dmc:<domain>-<task>")
        env = gym.make(env_id, obs_type=obs_type, **kwargs)
        base = env.unwrapped
        length = base.episode_steps
        robot, joint_names = base.robot.name, [*base.robot.arm_joints, *base.robot.gripper_joints]
        control_hz, layout = base.control_hz, list(base.obs_layout)
        del sim
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ValueError(f"task={task!r}: continuous (Box) action space expected, got {env.action_space}")
    low = env.action_space.low.astype(np.float64)
    high = env.action_space.high.astype(np.float64)
    if not (np.allclose(low, -1) and np.allclose(high, 1)):
        ones = np.ones(env.action_space.shape, np.float32)
        env = gym.wrappers.RescaleAction(env, -ones, ones)
    env = DictObs(env, obs_type)
    if frame_stack > 1 and "pixels" in env.observation_space.spaces:
        from robot_rl.frame_stack import FrameStack

        env = FrameStack(env, frame_stack)
    spec = {k: (tuple(s.shape), np.dtype(s.dtype).name) for k, s in env.observation_space.spaces.items()}
    info = EnvInfo(task=task, obs_type=obs_type, obs_spec=spec, action_dim=int(np.prod(env.action_space.shape)),
                   action_low=low.tolist(), action_high=high.tolist(), episode_length=int(length),
                   control_hz=control_hz, robot=robot, joint_names=joint_names, obs_layout=layout,
                   frame_stack=frame_stack if "pixels" in spec else 1)
    return env, info
