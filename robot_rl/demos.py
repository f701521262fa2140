"""`robot-rl demos task=panda-pick-sparse episodes=5 out=demos/pick`: scripted-expert demonstrations in the
demonstrations format (docs/formats.md), with camera images when `obs=state+pixels`.

`robot-rl demos recording=bag_folder task=panda-pick-sparse out=demos/teleop` converts a robot recording
(rosbag2: /joint_states, the joint command topic, camera images) into the same format instead
(robot_rl/recording_to_demos.py); `robot-rl demos lerobot=<LeRobotDataset folder> task=panda-reach out=...`
converts a dataset LeRobot recorded on a real arm.

`format=lerobot` writes a LeRobotDataset v3 folder (robot_rl/lerobot_dataset.py) instead of our own format;
`robot-rl train demos=<folder>` reads either.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RecordingConfig:
    command_topic: str = ""            # "" : the one Float64MultiArray topic in the recording
    image_topic: str = "/camera/color/image_raw"
    object_topic: str = ""             # geometry_msgs/PoseStamped of the object (push/pick state), "" : none
    goal: list[float] = field(default_factory=list)   # goal position (m, base frame) for the state vector
    success_steps: int = 1             # the last N steps of a recording count as success (reward 1 on sparse tasks)


@dataclass
class Config:
    task: str = "panda-pick-sparse"
    episodes: int = 5
    out: str = ""                      # default demos/<task>
    obs: str = "state"                 # state | state+pixels (pixels are always stored with state)
    render_size: int = 64
    seed: int = 0
    action: str = ""                   # the action space the expert acts in (joint | ee | ee_yaw; "": the task's)
    noise: float = 0.0                 # std of Gaussian noise on the expert's actions
    successful_only: bool = True       # keep only episodes the expert ends successfully (MoDem's demos are)
    max_attempts: int = 0              # episodes tried before giving up; 0: 4 x episodes
    overwrite: bool = False
    progress: bool = True
    recording: str = ""                # convert this rosbag2 folder/file instead of running the expert
    lerobot: str = ""                  # convert this LeRobotDataset (recorded by LeRobot on a real arm) instead
    format: str = "native"             # native (meta.json + episode_*.npz) | lerobot (LeRobotDataset v3)
    robot_type: str = ""               # LeRobot's info.json robot_type (format=lerobot); "" : the task's robot
    rec: RecordingConfig = field(default_factory=RecordingConfig)


def collect(config: Config):
    """Run the scripted expert; returns (DemoMeta, [DemoEpisode]) with `config.episodes` episodes."""
    from tqdm import tqdm

    from robot_rl.demo_dataset import DemoEpisode, DemoMeta
    from robot_rl.envs import make_env
    from sim.experts import Expert

    if config.obs not in ("state", "state+pixels"):
        raise ValueError(f"obs={config.obs!r}: expected 'state' or 'state+pixels' (pixels are stored with state)")
    if config.episodes < 1:
        raise ValueError(f"episodes={config.episodes}: expected >= 1")
    space = {"action": config.action} if config.action else {}
    env, info = make_env(config.task, config.obs, seed=config.seed, render_size=config.render_size, **space)
    if info.obs_layout is None:
        raise ValueError(f"task={config.task!r}: no scripted expert (only the sim/ panda-* tasks have one)")
    expert = Expert(env, noise=config.noise, seed=config.seed)
    keys = list(info.obs_spec)
    episodes: list[DemoEpisode] = []
    attempts = config.max_attempts or 4 * config.episodes
    bar = tqdm(total=config.episodes, disable=not config.progress, desc=f"demos {config.task}")
    try:
        for attempt in range(attempts):
            if len(episodes) == config.episodes:
                break
            obs, _ = env.reset(seed=config.seed * 100_003 + attempt)
            frames = {k: [obs[k]] for k in keys}
            actions, rewards, successes = [], [], []
            done = False
            while not done:
                action = expert(env)
                obs, reward, terminated, truncated, step_info = env.step(action)
                done = terminated or truncated
                for k in keys:
                    frames[k].append(obs[k])
                actions.append(action)
                rewards.append(reward)
                successes.append(bool(step_info["success"]))
            if config.successful_only and not successes[-1]:
                continue
            episodes.append(DemoEpisode(action=np.asarray(actions, np.float32), reward=np.asarray(rewards, np.float32),
                                        success=np.asarray(successes, bool),
                                        **{k: np.stack(v) for k, v in frames.items()}))
            bar.update(1)
    finally:
        bar.close()
        env.close()
    if len(episodes) < config.episodes:
        raise RuntimeError(f"the expert succeeded in only {len(episodes)} of {attempts} episodes on {config.task}; "
                           f"asked for {config.episodes} (raise max_attempts= or set successful_only=false)")
    meta = DemoMeta(task=config.task, obs_keys=keys, state_dim=int(info.obs_spec["state"][0][0]),
                    pixel_shape=list(info.obs_spec["pixels"][0]) if "pixels" in keys else None,
                    action_dim=info.action_dim, control_hz=float(info.control_hz), joint_names=info.joint_names,
                    source="scripted-expert", obs_layout=[list(x) for x in info.obs_layout])
    return meta, episodes


def run(config: Config) -> int:
    from robot_rl.demo_dataset import save_demos

    out = config.out or f"demos/{config.task}"
    if config.format not in ("native", "lerobot"):
        print(f"robot-rl demos: format={config.format!r}: expected 'native' or 'lerobot'")
        return 2
    try:
        if config.recording and config.lerobot:
            raise ValueError("recording= and lerobot= are two sources; give one")
        if config.lerobot:
            from robot_rl.recording_to_demos import convert_lerobot

            meta, episodes = convert_lerobot(config.lerobot, config.task, config.obs, config.render_size, config.rec)
        elif config.recording:
            from robot_rl.recording_to_demos import convert_recording

            meta, episodes = convert_recording(config.recording, config.task, config.obs, config.render_size,
                                               config.rec)
        else:
            meta, episodes = collect(config)
        if config.format == "lerobot":
            from robot_rl.lerobot_dataset import save_lerobot

            save_lerobot(out, meta, episodes, overwrite=config.overwrite,
                         robot_type=config.robot_type or _robot_of(meta.task))
        else:
            save_demos(out, meta, episodes, overwrite=config.overwrite)
    except (ValueError, RuntimeError) as err:  # DemoError, RecordingError are ValueErrors
        print(f"robot-rl demos: {err}")
        return 2
    steps = sum(len(e) for e in episodes)
    success = np.mean([e.success[-1] for e in episodes])
    print(f"{out}: {len(episodes)} episodes, {steps} steps, obs {meta.obs_keys}, "
          f"success at the end {100 * success:.0f}% ({meta.source})")
    return 0


def _robot_of(task: str) -> str:
    return task.split("-", 1)[0]      # sim/ task ids start with the robot: panda-reach -> panda
