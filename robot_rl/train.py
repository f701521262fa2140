"""`robot-rl train task=panda-reach seed=1 out=runs/reach`: train a TD-MPC2 agent.

The driver between a collector (`envs=N` environments + an acting strategy) and a learner (the agent + a
batch sampler), robot_rl/training/. Keys: everything in AgentConfig (model_size, lr, horizon, planner.*, ...)
plus the run keys below. Defaults fit the device (`preset=auto`): on a CPU robot_rl/presets/cpu.yaml (a small
model, several environments, a cheap planner), on CUDA the paper's 5M settings. `config=<file>.yaml` layers
keys between the preset and the command line.

Writes into `out`: config.yaml, agent.pt (+ buffer.npz for resume), train.csv, eval.csv, tb/ (TensorBoard).
Checkpoints and evaluations wait for a barrier where every environment's episode has ended; `resume=true`
continues from `out/agent.pt` and, on the same device and thread count, reproduces the uninterrupted run
exactly. `init=<agent.pt>` starts from another run's agent and its replay buffer instead (fine-tuning, e.g. in an
identified simulator: `params=<identified file> randomize=true`).

`robot=dds|ros2` learns on a robot instead (robot_rl/training/robot_run.py): the arm over ROS 2 topics as the
task's environment, an asynchronous learner, teleop interventions into a demo buffer, a journal + rosbag2
recording of every step in `out`, and `resume=true` after a crash. `steps`, `seed_steps`, `updates_per_step`,
`eval_every`/`eval_episodes` (on the robot) and `checkpoint_every` (taken at the next episode end) keep their
meaning; the `robot*` keys, `detector`, `demo_ratio` and `weights_every` below are its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from robot_rl.agent_config import AgentConfig
from robot_rl.modem_config import ModemConfig

PRESETS = Path(__file__).parent / "presets"


class TrainConfigError(ValueError):
    """A train key out of range or inconsistent with the task."""


@dataclass
class Config(AgentConfig):
    task: str = "panda-reach"
    obs: str = "state"                 # state | pixels | state+pixels
    steps: int = 100_000               # environment steps, over all environments (running episodes finish)
    seed: int = 1
    out: str = ""                      # run folder; default runs/<task>-s<seed>
    preset: str = "auto"               # auto (cpu on a CPU, paper on CUDA) | cpu | paper; a layer under all keys
    device: str = "auto"               # auto | cpu | cuda | cuda:N
    compile: bool = False              # torch.compile the update step
    threads: int = 0                   # torch CPU threads (0: torch's default)
    resume: bool = False
    init: str = ""                     # start from this checkpoint's agent (fine-tuning)
    init_buffer: bool = True           # with init=: also that run's buffer.npz (a fresh one overfits at once)
    envs: int = 1                      # environments stepped together; one batched plan acts for all
    vector: str = "auto"               # local | subprocess | auto (subprocess for pixels when envs > 1)
    seed_steps: int = 0                # seeding steps before learning; 0: max(1000, 5 x episode length),
                                       # with demos modem.seed_steps (5000, MoDem's)
    buffer_size: int = 1_000_000
    updates_per_step: float = 1.0      # gradient updates per environment step (fractions accumulate)
    eval_every: int = 10_000           # environment steps between evaluations (0: only at the end)
    eval_episodes: int = 10            # run side by side in one batch
    checkpoint_every: int = 10_000     # environment steps between checkpoints (taken at the next barrier)
    progress: bool = True              # tqdm bar
    tensorboard: bool = True
    profile: bool = False              # print where the time went (env, act, buffer, sample, update, eval, ...)
    view: str = ""                     # rerun: show the run in Rerun (live viewer, else out/view.rrd)
    view_envs: int = 1                 # environments shown by view=rerun
    frame_stack: int = 3               # pixels: stack the last k camera frames (TD-MPC2 uses 3, MoDem 2)
    action: str = ""                   # sim tasks: joint | ee | ee_yaw (empty: the task's default, sim/env.py)
    action_history: int = 0            # sim tasks: the last k actions in the state (for action latency)
    params: str = ""                   # sim tasks: a robot parameters file (e.g. identified by sysid fit)
    randomize: bool = False            # sim tasks: domain randomisation (over `params`' intervals when given)
    demos: str = ""                    # demonstrations folder: train with MoDem's three phases (robot_rl/modem.py)
    modem: ModemConfig = field(default_factory=ModemConfig)
    # ---- learning on a robot (robot_rl/training/robot_run.py) ----
    robot: str = ""                    # "": simulation | dds | ros2: the robot over this ROS 2 transport
    robot_config: str = ""             # YAML of hardware.robot_link.RobotLinkConfig fields (topics, teleop/operator/
                                       # reset/ready, timeouts, home speed, safety); empty: the defaults
    robot_domain: int = -1             # DDS domain id (-1: ROS_DOMAIN_ID, else 0)
    robot_acting: str = "policy"       # policy (the policy prior) | planner (MPPI; refused if too slow for the period)
    detector: str = ""                 # module:callable (observation, task_state) -> (reward, success); empty: the
                                       # task state topic's dense/sparse reward (the task name's -sparse decides)
    demo_ratio: float = 0.5            # share of each batch from the teleoperated (demo) buffer once it has data
    weights_every: int = 0             # robot steps between weight hand-overs to the actor (0: between episodes)
    robot_wait_s: float = 120.0        # the robot lost (no joint states) or stopped (e-stop, fault): hold, wait this
                                       # long for it to come back, then continue; 0: stop at once (resume=true later)


def default_layer(pairs: dict[str, str]) -> dict:
    """The preset under every other key: `preset=auto` picks by device (cpu.yaml unless CUDA is used)."""
    from robot_rl.overrides import ConfigError, load_yaml

    name = pairs.get("preset", "auto")
    if name == "auto":
        device = pairs.get("device", "auto")
        name = "paper" if device.startswith("cuda") or (device == "auto" and _cuda_available()) else "cpu"
    if name == "paper":
        return {"preset": "paper"}
    path = PRESETS / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PRESETS.glob("*.yaml")) + ["auto", "paper"]
        raise ConfigError(f"preset={name!r}: unknown; expected one of {known}")
    layer = {**load_yaml(path), "preset": name}
    if pairs.get("robot"):   # a robot is one environment, whatever the preset runs in simulation
        layer.pop("envs", None)
    return layer


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def check_config(config: Config) -> None:
    if config.envs < 1:
        raise TrainConfigError(f"envs={config.envs}; expected >= 1 environments")
    if config.updates_per_step < 0:
        raise TrainConfigError(f"updates_per_step={config.updates_per_step}; expected >= 0")
    if config.vector not in ("auto", "local", "subprocess"):
        raise TrainConfigError(f"vector={config.vector!r}; expected auto, local or subprocess")
    for name in ("steps", "eval_every", "checkpoint_every", "seed_steps"):
        if getattr(config, name) < 0:
            raise TrainConfigError(f"{name}={getattr(config, name)}; expected >= 0")
    if config.eval_episodes < (0 if config.robot else 1):   # robot time is dear: a robot run may skip evaluation
        raise TrainConfigError(f"eval_episodes={config.eval_episodes}; expected >= {0 if config.robot else 1}")
    if config.frame_stack < 1:
        raise TrainConfigError(f"frame_stack={config.frame_stack}; expected >= 1")
    if (config.params or config.randomize) and config.task.startswith(("gym:", "dmc:")):
        raise TrainConfigError(f"params=/randomize=: only sim tasks (panda-*) take robot parameters, "
                               f"not task={config.task!r}")
    check_robot_keys(config)


ROBOT_TRANSPORTS = ("dds", "ros2")


def check_robot_keys(config: Config) -> None:
    if config.robot not in ("", *ROBOT_TRANSPORTS):
        raise TrainConfigError(f"robot={config.robot!r}: expected one of {ROBOT_TRANSPORTS} (or empty: simulation)")
    if not config.robot:
        set_keys = [k for k, v in (("robot_config", config.robot_config), ("detector", config.detector),
                                   ("weights_every", config.weights_every)) if v]
        if set_keys:
            raise TrainConfigError(f"{', '.join(set_keys)}: only with robot=dds|ros2 (learning on a robot)")
        return
    if config.robot_acting not in ("policy", "planner"):
        raise TrainConfigError(f"robot_acting={config.robot_acting!r}: expected policy or planner")
    if not 0.0 <= config.demo_ratio <= 1.0:
        raise TrainConfigError(f"demo_ratio={config.demo_ratio}: expected a share in [0, 1]")
    if config.weights_every < 0:
        raise TrainConfigError(f"weights_every={config.weights_every}: expected >= 0 robot steps")
    if not config.robot_wait_s >= 0:
        raise TrainConfigError(f"robot_wait_s={config.robot_wait_s}: expected >= 0 seconds")
    if config.robot_config and not Path(config.robot_config).is_file():
        raise TrainConfigError(f"robot_config={config.robot_config!r}: file not found")
    if config.detector and ":" not in config.detector:
        raise TrainConfigError(f"detector={config.detector!r}: expected module:callable")
    if config.envs != 1:
        raise TrainConfigError(f"envs={config.envs}: a robot is one environment (envs=1)")
    for key in ("demos", "params", "view"):
        if getattr(config, key):
            raise TrainConfigError(f"{key}=: not with robot={config.robot} (simulation only)")
    if config.randomize:
        raise TrainConfigError(f"randomize=true: not with robot={config.robot} (the robot is what it is)")


def env_kwargs(config: Config) -> dict:
    kwargs: dict = {}
    if config.action:
        kwargs["action"] = config.action
    if config.action_history:
        kwargs["action_history"] = config.action_history
    if config.params:
        kwargs["params"] = config.params
    if config.randomize:
        kwargs["randomize"] = True
    return kwargs


def run(config: Config) -> int:
    result = train(config)
    return 0 if result is not None else 2


def train(config: Config) -> dict | None:
    """Train; returns the final evaluation (return, success, ...) plus 'step', or None on bad input."""
    import torch

    from robot_rl.agent import pick_device
    from robot_rl.envs import make_env
    from robot_rl.training.run import TrainingRun

    check_config(config)
    if config.robot:   # one intra-op thread unless told: the actor must not wait for the learner's kernels
        torch.set_num_threads(config.threads or 1)
        return _train_on_robot(config)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    try:
        device = pick_device(config.device)
        probe, info = make_env(config.task, config.obs, seed=config.seed, frame_stack=config.frame_stack,
                               **env_kwargs(config))
        probe.close()
        run_ = TrainingRun(config, info, device)
    except ValueError as err:
        if isinstance(err, TrainConfigError):
            raise
        print(f"robot-rl train: {err}")
        return None
    print(f"robot-rl train: {config.task}, preset {config.preset}, device {device}, "
          f"{torch.get_num_threads()} threads, {config.envs} environments ({type(run_.pool).__name__}), "
          f"model {config.model_size} ({sum(p.numel() for p in run_.agent.model.parameters()) / 1e6:.2f}M "
          f"parameters), {'planner' if config.planner.plan else 'policy'} acting")
    try:
        return run_.run()
    finally:
        run_.close()



def _train_on_robot(config: Config) -> dict | None:
    import torch

    from robot_rl.agent import pick_device
    from robot_rl.training.robot_env import RobotEnvError
    from robot_rl.training.robot_run import OnRobotRun

    try:
        run_ = OnRobotRun(config, pick_device(config.device))
    except RobotEnvError as err:
        print(f"robot-rl train: {err}")
        return None
    print(f"robot-rl train: {config.task} on the robot over {config.robot}, preset {config.preset}, "
          f"{torch.get_num_threads()} torch threads, model {config.model_size} "
          f"({sum(p.numel() for p in run_.agent.model.parameters()) / 1e6:.2f}M parameters), "
          f"{config.robot_acting} acting at {run_.setup.control_hz:g} Hz")
    return run_.run()
