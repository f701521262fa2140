"""`robot-rl train task=panda-reach steps=20000 seed=1 out=runs/reach`: train a TD-MPC2 agent.

Keys: everything in AgentConfig (model_size, lr, horizon, planner.samples, ...) plus the run keys below.
Presets: `config=robot_rl/presets/<name>.yaml` (e.g. demo.yaml: panda-reach on a CPU in minutes).
Writes into `out`: config.yaml, agent.pt (+ buffer.npz for resume), train.csv, eval.csv, tb/ (TensorBoard).
Checkpoints are taken at episode ends; `resume=true` continues from `out/agent.pt` and, on the same
device and thread count, reproduces the uninterrupted run exactly.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_rl.agent_config import AgentConfig
from robot_rl.modem_config import ModemConfig


@dataclass
class Config(AgentConfig):
    task: str = "panda-reach"
    obs: str = "state"                 # state | pixels | state+pixels
    steps: int = 100_000               # environment steps (the last episode runs to its end)
    seed: int = 1
    out: str = ""                      # run folder; default runs/<task>-s<seed>
    device: str = "auto"               # auto | cpu | cuda | cuda:N
    compile: bool = False              # torch.compile the update step
    threads: int = 0                   # torch CPU threads (0: torch's default)
    resume: bool = False
    seed_steps: int = 0                # random-action steps before learning; 0: max(1000, 5 x episode length)
    buffer_size: int = 1_000_000
    updates_per_step: float = 1.0      # gradient updates per environment step (fractions accumulate)
    eval_every: int = 10_000           # environment steps between evaluations (0: only at the end)
    eval_episodes: int = 10
    checkpoint_every: int = 10_000     # environment steps between checkpoints (taken at the next episode end)
    progress: bool = True              # tqdm bar
    tensorboard: bool = True
    frame_stack: int = 1               # pixels: stack the last k camera frames (MoDem and TD-MPC use 3)
    demos: str = ""                    # demonstrations folder: train with MoDem's three phases (robot_rl/modem.py)
    modem: ModemConfig = field(default_factory=ModemConfig)


def episode_seed(seed: int, episode: int) -> int:
    """Each training episode resets with its own seed, so a resumed run meets the same episodes."""
    return seed * 1_000_003 + episode


def run(config: Config) -> int:
    result = train(config)
    return 0 if result is not None else 2


def train(config: Config) -> dict | None:
    """Train; returns the final evaluation (return, success, ...) plus 'step', or None on bad input."""
    import torch
    from tqdm import tqdm

    from robot_rl.agent import TDMPC2, pick_device
    from robot_rl.agent_config import agent_config_of
    from robot_rl.checkpoint import CheckpointError, atomic_write_bytes, load_checkpoint, save_checkpoint
    from robot_rl.envs import make_env
    from robot_rl.evaluate import evaluate
    from robot_rl.overrides import to_dict
    from robot_rl.replay_buffer import ReplayBuffer
    from robot_rl.run_log import RunLog
    import yaml

    out = Path(config.out or f"runs/{config.task}-s{config.seed}")
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    try:
        device = pick_device(config.device)
        env, info = make_env(config.task, config.obs, seed=config.seed, frame_stack=config.frame_stack)
        eval_env, _ = make_env(config.task, config.obs, seed=config.seed + 1, frame_stack=config.frame_stack)
        agent_cfg = agent_config_of(config)
        torch.manual_seed(config.seed)
        agent = TDMPC2(agent_cfg, info.model_obs_spec, info.action_dim, info.episode_length, device, config.compile)
    except ValueError as err:
        print(f"robot-rl train: {err}")
        return None
    rng = np.random.default_rng(config.seed)
    buffer = ReplayBuffer(config.buffer_size, info.obs_spec, info.action_dim, agent_cfg.horizon, seed=config.seed)
    seed_steps = config.seed_steps or max(1000, 5 * info.episode_length)
    modem = None
    if config.demos:
        from robot_rl.modem import Modem

        try:
            modem = Modem(config.modem, config.demos, agent, info, config.seed, seed_steps)
        except ValueError as err:
            print(f"robot-rl train: {err}")
            return None
    step = episode = 0
    update_credit = 0.0
    last_eval: dict = {}
    ckpt_path, buffer_path = out / "agent.pt", out / "buffer.npz"

    out.mkdir(parents=True, exist_ok=True)
    if config.resume and ckpt_path.exists():
        try:
            payload = load_checkpoint(ckpt_path)
            if payload["agent_config"] != to_dict(agent_cfg) or payload["env"]["task"] != config.task:
                raise CheckpointError(f"{ckpt_path}: was trained with another task or agent config; "
                                      "resume with the same keys or use a new out=")
            agent.load_state_dict(payload["agent"])
            buffer.load(buffer_path)
        except (CheckpointError, ValueError, FileNotFoundError) as err:
            print(f"robot-rl train: cannot resume: {err}")
            return None
        step, episode = payload["step"], payload["episode"]
        extra = payload["extra"]
        rng.bit_generator.state = extra["rng_numpy"]
        update_credit, last_eval = extra["update_credit"], extra.get("last_eval", {})
        torch.set_rng_state(payload["rng"]["torch"])
        if payload["rng"]["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
        print(f"resuming {out} at step {step} (episode {episode})")
    elif config.resume:
        print(f"no checkpoint in {out}; starting a new run")
    atomic_write_bytes(out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False).encode())
    log = RunLog(out, resume_step=step if step else None, tensorboard=config.tensorboard)
    if modem is not None and step == 0:  # MoDem phase 1: behaviour cloning on the demos
        bc = modem.pretrain_policy(progress=config.progress)
        if bc:
            print(f"behaviour cloning on {modem.num_demos} demos: {len(bc)} steps, loss {bc[0]:.4f} -> {bc[-1]:.4f}")

    def checkpoint() -> None:
        buffer.save(buffer_path)
        save_checkpoint(ckpt_path, agent, info, to_dict(config), step, episode,
                        {"rng_numpy": rng.bit_generator.state, "update_credit": update_credit,
                         "last_eval": last_eval})

    bar = tqdm(total=config.steps, initial=min(step, config.steps), disable=not config.progress,
               desc=config.task, dynamic_ncols=True)
    metrics: dict[str, float] = {}
    t_start, steps_start = time.perf_counter(), step
    while step < config.steps:
        obs, _ = env.reset(seed=episode_seed(config.seed, episode))
        buffer.start_episode(obs)
        ep_return, first, done, ep_info = 0.0, True, False, {}
        t_episode, step_episode = time.perf_counter(), step
        while not done:
            if step < seed_steps:
                action = (modem.seed_action(obs) if modem else
                          rng.uniform(-1.0, 1.0, info.action_dim).astype(np.float32))
            else:
                action = modem.act(obs, first, step) if modem else agent.act(obs, first)
            first = False
            obs, reward, terminated, truncated, ep_info = env.step(action)
            done = terminated or truncated
            buffer.add(obs, action, float(reward))
            ep_return += float(reward)
            step += 1
            if step >= seed_steps:
                if step == seed_steps:  # pretrain on the seeding data, as TD-MPC2 does
                    n = seed_steps
                else:
                    update_credit += config.updates_per_step
                    n = int(update_credit)
                    update_credit -= n
                for _ in range(n):
                    metrics = agent.update(modem.sample(buffer, agent_cfg.batch_size, step, device) if modem
                                           else buffer.sample(agent_cfg.batch_size, device))
            bar.update(1)
        episode += 1
        elapsed = time.perf_counter() - t_episode
        row = {"episode": episode, "return": ep_return, "success": float(ep_info.get("success", False)),
               "episode_steps": step - step_episode, "steps_per_s": (step - step_episode) / max(elapsed, 1e-9),
               **metrics}
        log.log("train", step, row)
        bar.set_postfix({"return": f"{ep_return:.1f}", "success": int(row["success"]),
                         **({"eval_success": f"{last_eval['success']:.2f}"} if last_eval else {})})
        final = step >= config.steps
        prev = step - row["episode_steps"]
        if final or (config.eval_every > 0 and step // config.eval_every > prev // config.eval_every):
            last_eval = evaluate(agent, eval_env, config.eval_episodes, config.seed)
            log.log("eval", step, {"episode": episode, **last_eval})
            bar.write(f"step {step}: eval return {last_eval['return']:.2f}, success {last_eval['success']:.2f}")
        if final or (config.checkpoint_every > 0 and step // config.checkpoint_every > prev // config.checkpoint_every):
            checkpoint()
    bar.close()
    log.close()
    rate = (step - steps_start) / max(time.perf_counter() - t_start, 1e-9)
    if not last_eval:  # resumed a run that had already finished
        last_eval = evaluate(agent, eval_env, config.eval_episodes, config.seed)
    env.close()
    eval_env.close()
    print(f"{config.task}: {step} steps ({rate:.1f} steps/s), eval return {last_eval['return']:.2f}, "
          f"success rate {100 * last_eval['success']:.0f}%  -> {out}")
    return {**last_eval, "step": step}
