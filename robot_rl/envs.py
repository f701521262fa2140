"""Environments from a task string, all behind one Gymnasium interface whose observations are dicts
{"state": float32 (D,)} / {"pixels": uint8 (C, H, W)} / both, and whose actions lie in [-1, 1]:

- `panda-reach`, `panda-pick-sparse`, ...: the sim/ tasks (`robot_rl/<task>-v0`, registered by `import sim`);
- `gym:<id>`: any Gymnasium id with a Box action space (e.g. `gym:Pendulum-v1`, or `gym:<module>:<id>` to
  import the module that registers it, e.g. `gym:panda_gym:PandaPush-v3`). Goal-conditioned environments
  (Dict observations observation/achieved_goal/desired_goal, as gymnasium-robotics and panda-gym define them)
  are flattened into one state vector in that order, and `info["success"]` is their `info["is_success"]`;
- `dmc:<domain>-<task>`: a DeepMind Control Suite task (dm_control), state flattened, action repeat 2
  (as TD-MPC2 uses for DMControl), 500 agent steps per episode;
- `mw:<task>` / `mw:<task>-sparse`: a Meta-World v3 task (`metaworld`, goal observable, a new goal and object
  position every episode) as TD-MPC2 runs it: action repeat 2 (rewards summed), 100 agent steps per episode,
  `info["success"]` the task's success at the last repeated step; `-sparse` rewards that success alone (1/0),
  as MoDem trains. Pixels from the `corner2` camera.

Every step keeps `terminated` (a terminal state: stop bootstrapping) apart from `truncated` (a time limit).
`EnvInfo.episodic` says whether the task can terminate at all: the sim/, dmc: and mw: tasks never do; a `gym:`
task is taken to (`episodic=False` to make_env declares it cannot, and a termination then raises).
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Callable
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
    action: str | None = None      # sim tasks: the action space (joint | ee | ee_yaw, sim/action_mapping.py)
    action_space: dict | None = None   # sim tasks: its settings as bundle.json's `action` block records them
    action_history: int = 0        # sim tasks: the state ends with the last k actions sent ("last_actions")
    episodic: bool = False         # the task can terminate (a terminal state, not a time limit): stop bootstrapping

    def as_dict(self) -> dict:
        return {"task": self.task, "obs_type": self.obs_type,
                "obs_spec": {k: {"shape": list(s), "dtype": d} for k, (s, d) in self.obs_spec.items()},
                "action_dim": self.action_dim, "action_low": self.action_low, "action_high": self.action_high,
                "episode_length": self.episode_length, "control_hz": self.control_hz, "robot": self.robot,
                "joint_names": self.joint_names,
                "obs_layout": [list(x) for x in self.obs_layout] if self.obs_layout is not None else None,
                "frame_stack": self.frame_stack, "action": self.action, "action_space": self.action_space,
                "action_history": self.action_history, "episodic": self.episodic}

    @staticmethod
    def from_dict(d: dict) -> "EnvInfo":
        return EnvInfo(task=d["task"], obs_type=d["obs_type"],
                       obs_spec={k: (tuple(v["shape"]), v["dtype"]) for k, v in d["obs_spec"].items()},
                       action_dim=d["action_dim"], action_low=list(d["action_low"]),
                       action_high=list(d["action_high"]), episode_length=d["episode_length"],
                       control_hz=d.get("control_hz"), robot=d.get("robot"), joint_names=list(d.get("joint_names", [])),
                       obs_layout=[(str(n), int(s)) for n, s in d["obs_layout"]] if d.get("obs_layout") else None,
                       frame_stack=int(d.get("frame_stack", 1)),
                       # checkpoints from before the action spaces: the joint space, no action history
                       action=d.get("action", "joint" if d.get("robot") else None), action_space=d.get("action_space"),
                       action_history=int(d.get("action_history", 0)), episodic=bool(d.get("episodic", False)))

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


GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


class FlatGoalEnv(gym.Wrapper):
    """A goal-conditioned environment (Dict observation/achieved_goal/desired_goal) with one flat state vector,
    concatenated in that order, and `info["success"]` from the environment's `info["is_success"]`."""

    def __init__(self, env: gym.Env, task: str):
        super().__init__(env)
        self.task = task
        spaces = env.observation_space.spaces
        self.layout = [(k, int(np.prod(spaces[k].shape))) for k in GOAL_KEYS]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (sum(n for _, n in self.layout),), np.float32)

    def _flat(self, obs: dict) -> np.ndarray:
        return np.concatenate([np.asarray(obs[k], np.float32).ravel() for k in GOAL_KEYS])

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)  # is_success at reset: optional, not every env reports it
        return self._flat(obs), {**info, "success": bool(info.get("is_success", False))}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "is_success" not in info:
            raise ValueError(f"task={self.task!r}: a goal-conditioned environment (observation/achieved_goal/"
                             f"desired_goal) must report info['is_success'] from step(); its info has "
                             f"{sorted(info)}")
        return self._flat(obs), reward, terminated, truncated, {**info, "success": bool(info["is_success"])}


class NeverTerminates(gym.Wrapper):
    """A task declared non-episodic: a termination would be folded into a bootstrapped time limit, so it raises."""

    def __init__(self, env: gym.Env, task: str):
        super().__init__(env)
        self.task = task

    def step(self, action):
        result = self.env.step(action)
        if result[2]:
            raise ValueError(f"task={self.task!r}: the environment terminated an episode but was declared "
                             f"episodic=False; make it with episodic=True so terminal states stop bootstrapping")
        return result


def _patch_metaworld_for_mujoco() -> None:
    """metaworld 3.0 writes 11 weld parameters into `model.eq_data`; MuJoCo >= 3.4 has mjNEQDATA = 12, so its
    mocap reset fails ("could not broadcast (11,) into (12,)"). Write the same 11 and leave the new trailing
    field at the value MuJoCo compiled."""
    import mujoco
    from metaworld.sawyer_xyz_env import SawyerMocapBase

    if mujoco.mjNEQDATA == 11 or getattr(SawyerMocapBase, "_robot_rl_weld_patch", False):
        return
    weld = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0])  # metaworld's own values

    def reset_mocap_welds(self) -> None:
        if self.model.nmocap > 0 and self.model.eq_data is not None:
            for i in range(self.model.neq):
                if self.model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
                    self.model.eq_data[i, :weld.size] = weld

    SawyerMocapBase.reset_mocap_welds = reset_mocap_welds
    SawyerMocapBase._robot_rl_weld_patch = True


def _metaworld_task_error(task: str) -> str | None:
    """Why `task` (reach, pick-place-v3, ...) is not a Meta-World v3 task, with the close matches; or None."""
    try:
        _patch_metaworld_for_mujoco()
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE
    except ImportError as err:
        return f"mw:{task}: Meta-World is not installed ({err}); pip install -e '.[suites]'"
    name = task if task.endswith("-v3") else f"{task}-v3"
    if f"{name}-goal-observable" in ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE:
        return None
    known = sorted(k[:-len("-v3-goal-observable")] for k in ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE)
    close = difflib.get_close_matches(task.removesuffix("-v3"), known, n=4, cutoff=0.5)
    return (f"mw:{task}: not a Meta-World v3 task" + (f"; did you mean {close}?" if close else "")
            + f" (all {len(known)}: {known})")


class MetaWorldEnv(gym.Env):
    """A Meta-World v3 task as TD-MPC2 runs it: goal observable with a new goal every episode, one zero action
    after each reset, `action_repeat` simulator steps per action with their rewards summed, truncation after
    `episode_length` agent steps, no terminal states; `info["success"]` the success of the last repeated step.
    `sparse=True`: the reward is that success (1/0) instead of Meta-World's shaped reward (MoDem)."""

    metadata = {"render_modes": ["rgb_array"]}
    CAMERA = "corner2"
    CAMERA_POS = (0.75, 0.075, 0.7)  # TD-MPC2's placement of corner2, the whole table in view
    STATE_LAYOUT = [("hand_pos", 3), ("gripper_distance", 1), ("objects", 14), ("previous_frame", 18), ("goal", 3)]
    # Meta-World's 4096 px shadow maps dominate offscreen rendering on a CPU (EGL, software: ~1.2 s per 64 px
    # frame); 1024 px halves that and changes a 64 px image by < 0.1 grey level on average.
    SHADOW_MAP = 1024

    def __init__(self, task: str, obs_type: str = "state", sparse: bool = False, action_repeat: int = 2,
                 episode_length: int = 100, render_size: int = 64, seed: int | None = None):
        error = _metaworld_task_error(task)
        if error:
            raise ValueError(error)
        import mujoco
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

        name = task if task.endswith("-v3") else f"{task}-v3"
        self._env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{name}-goal-observable"](seed=seed)
        self._env._freeze_rand_vec = False   # a new goal and object position every reset
        self._env.seeded_rand_vec = True      # drawn from the env's seeded generator: reset(seed=s) repeats
        self.obs_type, self.sparse, self.render_size = obs_type, sparse, render_size
        self.action_repeat, self.episode_length = action_repeat, episode_length
        self.control_hz = 1.0 / (self._env.dt * action_repeat)
        self.action_space = gym.spaces.Box(self._env.action_space.low.astype(np.float32),
                                           self._env.action_space.high.astype(np.float32))
        state = gym.spaces.Box(-np.inf, np.inf, self._env.observation_space.shape, np.float32)
        pixels = gym.spaces.Box(0, 255, (3, render_size, render_size), np.uint8)
        self.observation_space = {"state": state, "pixels": pixels,
                                  "state+pixels": gym.spaces.Dict({"state": state, "pixels": pixels})}[obs_type]
        model = self._env.model
        model.cam_pos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, self.CAMERA)] = self.CAMERA_POS
        model.vis.quality.shadowsize = min(int(model.vis.quality.shadowsize), self.SHADOW_MAP)
        self._renderer = self._make_renderer() if obs_type != "state" else None
        self._steps = 0

    def _make_renderer(self):
        import atexit

        import mujoco

        renderer = mujoco.Renderer(self._env.model, self.render_size, self.render_size)
        # for envs nobody closed: registered after the GL backend's own teardown (atexit runs last-registered
        # first), so the context goes while EGL still works (as sim/backends/mujoco_backend.py does)
        atexit.register(renderer.close)
        return renderer

    def _obs(self, state: np.ndarray):
        state = np.asarray(state, np.float32)
        if self.obs_type == "state":
            return state
        pix = self.render().transpose(2, 0, 1).copy()
        return pix if self.obs_type == "pixels" else {"state": state, "pixels": pix}

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.seed(seed)
        self._env.reset()
        state, *_ = self._env.step(np.zeros(self.action_space.shape, np.float32))
        self._steps = 0
        return self._obs(state), {"success": False}

    def step(self, action):
        reward, action = 0.0, np.asarray(action, np.float32)
        for _ in range(self.action_repeat):
            state, r, _, _, info = self._env.step(action.copy())
            reward += float(r)
        success = bool(info["success"])
        self._steps += 1
        return (self._obs(state), float(success) if self.sparse else reward, False,
                self._steps >= self.episode_length, {**info, "success": success})

    def render(self):
        if self._renderer is None:
            self._renderer = self._make_renderer()
        self._renderer.update_scene(self._env.data, camera=self.CAMERA)
        return self._renderer.render()

    def close(self):
        if self._renderer is not None:
            import atexit

            atexit.unregister(self._renderer.close)
            self._renderer.close()
            self._renderer = None
        self._env.close()


@dataclass
class Built:
    """An environment a suite made, before the common wrappers, with what EnvInfo needs from it."""
    env: gym.Env
    episode_length: int
    episodic: bool = False
    control_hz: float | None = None
    robot: str | None = None
    joint_names: list[str] = field(default_factory=list)
    obs_layout: list[tuple[str, int]] | None = None
    action: str | None = None
    action_space: dict | None = None
    action_history: int = 0


def _gym_suite(name: str, obs_type: str, seed: int | None, episodic: bool | None, kwargs: dict) -> Built:
    if obs_type != "state":
        raise ValueError(f"task='gym:{name}': gym: tasks support obs=state only")
    env = gym.make(name, **kwargs)
    length = env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else 1000
    layout = None
    space = env.observation_space
    if isinstance(space, gym.spaces.Dict) and set(GOAL_KEYS) <= set(space.spaces):
        env = FlatGoalEnv(env, f"gym:{name}")
        layout = env.layout
    return Built(env, length, episodic=True if episodic is None else episodic, obs_layout=layout)


def _only_render_size(task: str, kwargs: dict) -> None:
    """dmc: and mw: tasks take no environment options but the camera size (robot parameters are sim/'s)."""
    unknown = sorted(set(kwargs) - {"render_size"})
    if unknown:
        raise ValueError(f"task={task!r}: takes no {unknown} (only render_size); robot parameters and domain "
                         f"randomisation apply to the sim/ tasks")


def _dmc_suite(name: str, obs_type: str, seed: int | None, episodic: bool | None, kwargs: dict) -> Built:
    _only_render_size(f"dmc:{name}", kwargs)
    domain, _, task = name.partition("-")
    env = DMCEnv(domain, task.replace("-", "_"), obs_type=obs_type, seed=seed, **kwargs)
    return Built(env, env.episode_length)


def _metaworld_suite(name: str, obs_type: str, seed: int | None, episodic: bool | None, kwargs: dict) -> Built:
    _only_render_size(f"mw:{name}", kwargs)
    sparse = name.endswith("-sparse")
    env = MetaWorldEnv(name.removesuffix("-sparse"), obs_type=obs_type, sparse=sparse, seed=seed, **kwargs)
    return Built(env, env.episode_length, control_hz=env.control_hz,
                 obs_layout=list(env.STATE_LAYOUT) if obs_type != "pixels" else None)


def _sim_suite(task: str, obs_type: str, seed: int | None, episodic: bool | None, kwargs: dict) -> Built:
    error = _sim_task_error(task)  # (imports sim, which registers the robot_rl/<task>-v0 ids)
    if error:
        raise ValueError(error)
    env = gym.make(f"robot_rl/{task}-v0", obs_type=obs_type, **kwargs)
    base = env.unwrapped
    return Built(env, base.episode_steps, control_hz=base.control_hz, robot=base.robot.name,
                 joint_names=[*base.robot.arm_joints, *base.robot.gripper_joints], obs_layout=list(base.obs_layout),
                 action=base.action_mapping.name, action_space=base.action_mapping.to_dict(),
                 action_history=base.action_history)


def _gym_task_error(name: str) -> str | None:
    import importlib

    module, _, env_id = name.rpartition(":")  # gym:<module>:<id> imports the module that registers the id
    try:
        if module:
            importlib.import_module(module)
        gym.spec(env_id)
    except (ImportError, gym.error.Error) as err:
        return f"task='gym:{name}': {err}"
    return None


def _dmc_task_error(name: str) -> str | None:
    from dm_control import suite

    domain, _, task = name.partition("-")
    if (domain, task.replace("-", "_")) not in suite.ALL_TASKS:
        return f"task='dmc:{name}': not a dm_control suite task (dmc:<domain>-<task>, e.g. dmc:cartpole-swingup)"
    return None


def _sim_task_error(task: str) -> str | None:
    import sim  # registers the robot_rl/<task>-v0 ids

    del sim
    if f"robot_rl/{task}-v0" in gym.registry:
        return None
    known = sorted(k[len("robot_rl/"):-3] for k in gym.registry if k.startswith("robot_rl/"))
    return f"task={task!r}: unknown; expected one of {known}, gym:<id>, dmc:<domain>-<task> or mw:<task>"


# task prefix -> the suite that builds it from the rest of the task string; no prefix: the sim/ tasks
SUITES: dict[str, Callable[[str, str, int | None, bool | None, dict], Built]] = {
    "gym:": _gym_suite, "dmc:": _dmc_suite, "mw:": _metaworld_suite}
# task prefix -> why the rest of the task string names no environment (None: it does), without building one
TASK_CHECKS: dict[str, Callable[[str], str | None]] = {
    "gym:": _gym_task_error, "dmc:": _dmc_task_error, "mw:": lambda name: _metaworld_task_error(
        name.removesuffix("-sparse"))}


def task_error(task: str) -> str | None:
    """Why `task` names no environment of make_env's suites, or None; looks the name up without building the
    environment (for checking a grid of runs before any starts, as `robot-rl sweep` does)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    prefix = next((p for p in TASK_CHECKS if task.startswith(p)), None)
    return TASK_CHECKS[prefix](task[len(prefix):]) if prefix else _sim_task_error(task)


def make_env(task: str, obs_type: str = "state", seed: int | None = None, frame_stack: int = 1,
             episodic: bool | None = None, action: str | None = None, action_history: int = 0,
             **kwargs) -> tuple[gym.Env, EnvInfo]:
    """An environment with dict observations and actions rescaled to [-1, 1], and its EnvInfo.
    `frame_stack` > 1 stacks that many camera frames (pixels only; state passes through). `episodic`: whether
    a `gym:` task can terminate (default: it can); other suites know their own. `action` (joint | ee | ee_yaw;
    None: the task's default) and `action_history` (the last k actions in the state) are the sim/ tasks' action
    space and latency-aware observation (sim/env.py); other suites refuse them."""
    if obs_type not in OBS_TYPES:
        raise ValueError(f"obs={obs_type!r}: expected one of {OBS_TYPES}")
    os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering without a display (read at mujoco import)
    prefix = next((p for p in SUITES if task.startswith(p)), None)
    build = SUITES[prefix] if prefix else _sim_suite
    if prefix and (action is not None or action_history):
        raise ValueError(f"task={task!r}: action={action!r} / action_history={action_history} choose the action "
                         f"space and last-actions observation of the sim/ robot tasks (panda-reach, ...), not of "
                         f"{prefix} tasks")
    if not prefix:
        kwargs = {**kwargs, "action": action, "action_history": action_history}
    built = build(task[len(prefix):] if prefix else task, obs_type, seed, episodic, kwargs)
    env = built.env if built.episodic else NeverTerminates(built.env, task)
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
                   action_low=low.tolist(), action_high=high.tolist(), episode_length=int(built.episode_length),
                   control_hz=built.control_hz, robot=built.robot, joint_names=built.joint_names,
                   obs_layout=built.obs_layout, frame_stack=frame_stack if "pixels" in spec else 1,
                   episodic=built.episodic, action=built.action, action_space=built.action_space,
                   action_history=built.action_history)
    return env, info
