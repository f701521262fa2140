"""One training run: builds the collector and the learner from a train Config, drives them, and keeps the
run folder (logs, checkpoints, exact resume).

The loop, per batched environment step: the collector acts for every running environment and returns plain
transitions; the learner stages them (episodes enter its buffer when they end) and runs the updates owed
(`updates_per_step` per environment step, fractions carried; when seeding ends, one burst of
`seed_steps x updates_per_step` updates on the seeding data, as TD-MPC2 pretrains its model). Evaluations
and checkpoints are due when the step count crosses their period; the collector then drains (running
episodes end, no new ones start) and they run at that barrier.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from robot_rl.envs import EnvInfo
from robot_rl.replay_buffer import ReplayBuffer
from robot_rl.training.collector import Collector, episode_seed
from robot_rl.training.env_pool import TaskEnvFactory, make_pool
from robot_rl.training.learner import Learner
from robot_rl.training.profile import PhaseTimer
from robot_rl.training.samplers import UniformSampler
from robot_rl.training.strategies import AgentActing, RandomActing, Schedule
from robot_rl.training.view import open_step_view


class TrainingRun:
    def __init__(self, config, info: EnvInfo, device: torch.device):
        from robot_rl.agent import TDMPC2
        from robot_rl.agent_config import agent_config_of
        from robot_rl.evaluate import eval_pool
        from robot_rl.train import env_kwargs

        self.config, self.info, self.device = config, info, device
        self.out = Path(config.out or f"runs/{config.task}-s{config.seed}")
        self.agent_cfg = agent_config_of(config)
        if info.episodic and not self.agent_cfg.episodic:  # a task that terminates: TD-MPC2's episodic mode
            self.agent_cfg = dataclasses.replace(self.agent_cfg, episodic=True)
        torch.manual_seed(config.seed)
        self.agent = TDMPC2(self.agent_cfg, info.model_obs_spec, info.action_dim, info.episode_length, device,
                            config.compile)
        self.timer = PhaseTimer(sync=torch.cuda.synchronize if config.profile and device.type == "cuda" else None)
        self.buffer = ReplayBuffer(config.buffer_size, info.obs_spec, info.action_dim, self.agent_cfg.horizon,
                                   seed=config.seed)
        default_seed = config.modem.seed_steps if config.demos else max(1000, 5 * info.episode_length)
        self.seed_steps = config.seed_steps or default_seed
        self.modem = None
        if config.demos:
            from robot_rl.modem import Modem

            self.modem = Modem(config.modem, config.demos, self.agent, info, config.seed, self.seed_steps)
        kwargs = env_kwargs(config)
        factory = TaskEnvFactory(config.task, config.obs, config.seed, config.frame_stack, **kwargs)
        self.pool = make_pool(factory, config.envs, config.vector)
        self.eval_pool = eval_pool(config.task, config.obs, config.frame_stack, config.seed + 1,
                                   config.eval_episodes, **kwargs)
        self.acting = AgentActing(self.agent, config.envs)
        if self.modem is not None:
            strategy, sampler = self.modem.strategy(self.acting), self.modem.sampler(self.buffer, device)
        else:
            # Fine-tuning seeds with the trained agent itself: its data is worth more than random actions.
            seeding = self.acting if config.init else RandomActing(info.action_dim, config.seed)
            strategy, sampler = Schedule([(self.seed_steps, seeding)], then=self.acting), \
                UniformSampler(self.buffer, device)
        obs_keys = list(info.obs_spec)
        self.collector = Collector(self.pool, strategy, lambda e: episode_seed(config.seed, e), obs_keys,
                                   info.action_dim, timer=self.timer)
        self.learner = Learner(self.agent, self.buffer, sampler, timer=self.timer)
        self.view = open_step_view(config.view, f"train {config.task}", self.out / "view.rrd", info,
                                   config.view_envs, self.acting)
        if self.view is not None:
            self.collector.observers.append(self.view)
        self.step = 0
        self.episodes = 0          # finished episodes
        self.update_credit = 0.0
        self.last_eval: dict = {}
        self.elapsed_before = 0.0  # wall-clock seconds of earlier sessions of this run (resume)
        self.t_start = time.perf_counter()

    # ---- persistence ----
    @property
    def ckpt_path(self) -> Path:
        return self.out / "agent.pt"

    def checkpoint(self) -> None:
        from robot_rl.checkpoint import save_checkpoint
        from robot_rl.overrides import to_dict

        with self.timer.phase("checkpoint"):
            self.buffer.save(self.out / "buffer.npz")
            extra = {"update_credit": self.update_credit, "last_eval": self.last_eval, "elapsed_s": self.elapsed,
                     "collector": self.collector.state(), "sampler": self.learner.sampler.state(),
                     "updates": self.learner.updates, "metrics": self.learner.logged_metrics(),
                     "modem": self.modem.state() if self.modem is not None else None}
            save_checkpoint(self.ckpt_path, self.agent, self.info, to_dict(self.config), self.step, self.episodes,
                            extra)

    def restore(self) -> None:
        """resume=true: continue from out/agent.pt exactly where it was taken."""
        from robot_rl.checkpoint import CheckpointError, load_checkpoint
        from robot_rl.overrides import to_dict

        payload = load_checkpoint(self.ckpt_path)
        if payload["agent_config"] != to_dict(self.agent_cfg) or payload["env"]["task"] != self.config.task:
            raise CheckpointError(f"{self.ckpt_path}: was trained with another task or agent config; "
                                  "resume with the same keys or use a new out=")
        extra = payload["extra"]
        if "collector" not in extra:
            raise CheckpointError(f"{self.ckpt_path}: written by an older robot_rl without collector state; "
                                  "it cannot be resumed exactly (use init= to start from its agent)")
        saved_envs = payload["config"].get("envs", 1)
        if saved_envs != self.config.envs:
            raise CheckpointError(f"{self.ckpt_path}: was trained with envs={saved_envs}; resume with the same envs")
        self.agent.load_state_dict(payload["agent"])
        self.buffer.load(self.out / "buffer.npz")
        self.step, self.episodes = payload["step"], payload["episode"]
        self.update_credit, self.last_eval = extra["update_credit"], extra["last_eval"]
        self.elapsed_before = extra["elapsed_s"]
        self.collector.load_state(extra["collector"])
        self.learner.sampler.load_state(extra["sampler"])
        self.learner.updates = extra["updates"]
        self.learner.metrics = {k: torch.tensor(v) for k, v in extra["metrics"].items()}
        if self.modem is not None:
            self.modem.load_state(extra["modem"])
        torch.set_rng_state(payload["rng"]["torch"])
        if payload["rng"]["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["rng"]["cuda"])

    def initialise_from(self, path: str) -> None:
        """init=: the agent (model, optimisers, value scale) of another run, and its buffer (init_buffer)."""
        from robot_rl.training.warm_start import warm_start

        loaded = warm_start(self.agent, self.info, path, self.buffer if self.config.init_buffer else None)
        print(f"starting from {loaded}")

    @property
    def elapsed(self) -> float:
        """Wall-clock seconds this run has trained, over all its sessions."""
        return self.elapsed_before + time.perf_counter() - self.t_start

    # ---- the loop ----
    def run(self) -> dict | None:
        import yaml
        from tqdm import tqdm

        from robot_rl.checkpoint import CheckpointError, atomic_write_bytes
        from robot_rl.overrides import to_dict
        from robot_rl.run_log import RunLog

        config = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        try:
            if config.resume and self.ckpt_path.exists():
                self.restore()
                print(f"resuming {self.out} at step {self.step} (episode {self.episodes})")
            else:
                if config.resume:
                    print(f"no checkpoint in {self.out}; starting a new run")
                if config.init:
                    self.initialise_from(config.init)
        except (CheckpointError, ValueError, FileNotFoundError) as err:
            print(f"robot-rl train: cannot {'resume' if config.resume else 'initialise'}: {err}")
            return None
        atomic_write_bytes(self.out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False).encode())
        self.log = RunLog(self.out, resume_step=self.step if self.step else None, tensorboard=config.tensorboard)
        if self.modem is not None and self.step == 0:  # MoDem phase 1: behaviour cloning on the demos
            bc = self.modem.pretrain_policy(progress=config.progress)
            if bc:
                print(f"behaviour cloning on {self.modem.num_demos} demos: {len(bc)} steps, "
                      f"loss {bc[0]:.4f} -> {bc[-1]:.4f}")
        self.bar = tqdm(total=config.steps, initial=min(self.step, config.steps), disable=not config.progress,
                        desc=config.task, dynamic_ncols=True)
        start_step, t_start = self.step, time.perf_counter()
        self.t_start = t_start
        self._rate_mark = (self.step, t_start)
        eval_due = ckpt_due = False
        while True:
            final = self.step >= config.steps
            if (final or eval_due or ckpt_due) and not self.collector.draining:
                self.collector.drain()
            if self.collector.draining and self.collector.idle:
                if self.learner.pending:
                    raise RuntimeError("episodes staged in the learner at a barrier")  # a collector bug
                if eval_due or final:
                    self.evaluate()
                if ckpt_due or final:
                    self.checkpoint()
                eval_due = ckpt_due = False
                if final:
                    break
                self.collector.resume()
                continue
            prev = self.step
            transitions, finished, stepped = self.collector.step(self.step)
            self.learner.ingest(transitions)
            self.step += stepped
            owed = self._updates_owed(prev, self.step)
            self.learner.update(owed, self.step, progress=config.progress and owed >= 100)
            self.episodes += len(finished)
            if finished:
                self._log_episodes(finished)
            self.bar.update(min(self.step, config.steps) - min(prev, config.steps))
            eval_due |= config.eval_every > 0 and self.step // config.eval_every > prev // config.eval_every
            ckpt_due |= (config.checkpoint_every > 0
                         and self.step // config.checkpoint_every > prev // config.checkpoint_every)
        self.bar.close()
        self.log.close()
        rate = (self.step - start_step) / max(time.perf_counter() - t_start, 1e-9)
        print(f"{config.task}: {self.step} steps ({rate:.1f} steps/s, {self.learner.updates} updates), eval return "
              f"{self.last_eval['return']:.2f}, success rate {100 * self.last_eval['success']:.0f}%  -> {self.out}")
        if config.profile:
            print(self.timer.table(self.step - start_step, self.learner.updates))
        return {**self.last_eval, "step": self.step}

    def _updates_owed(self, prev: int, step: int) -> int:
        """Updates for the environment steps prev -> step. Updates wait while the buffer holds no whole
        episode yet (the credit carries over)."""
        rate, seed = self.config.updates_per_step, self.seed_steps
        if step >= seed:
            if prev < seed:  # seeding ended: pretrain on its data, then the steps past it
                self.update_credit += seed * rate + (step - seed) * rate
            else:
                self.update_credit += (step - prev) * rate
        if len(self.buffer) == 0:
            return 0
        n = int(self.update_credit)
        self.update_credit -= n
        return n

    def _log_episodes(self, finished) -> None:
        now = time.perf_counter()
        mark_step, mark_t = self._rate_mark
        rate = (self.step - mark_step) / max(now - mark_t, 1e-9)
        self._rate_mark = (self.step, now)
        with self.timer.phase("log"):
            metrics = self.learner.logged_metrics()
            first = self.episodes - len(finished)
            for k, ep in enumerate(finished, start=1):
                row = {"episode": first + k, "return": ep.ret, "success": float(ep.success),
                       "episode_steps": ep.steps, "env": ep.env, "steps_per_s": rate,
                       "updates": self.learner.updates, "metrics": self.learner.logged_metrics(), **metrics}
                self.log.log("train", self.step, row)
            last = finished[-1]
            self.bar.set_postfix({"return": f"{last.ret:.1f}", "success": int(last.success),
                                  **({"eval_success": f"{self.last_eval['success']:.2f}"} if self.last_eval else {})})

    def evaluate(self) -> None:
        from robot_rl.evaluate import evaluate

        with self.timer.phase("eval"):
            self.last_eval = evaluate(self.agent, self.eval_pool, self.config.eval_episodes, self.config.seed,
                                      progress=self.config.progress)
        self.log.log("eval", self.step, {"episode": self.episodes, **self.last_eval, "elapsed_s": self.elapsed})
        self.bar.write(f"step {self.step}: eval return {self.last_eval['return']:.2f}, "
                       f"success {self.last_eval['success']:.2f}")

    def close(self) -> None:
        self.pool.close()
        self.eval_pool.close()
        if self.view is not None:
            path = self.view.close()
            if path is not None:
                print(f"Rerun view saved to {path} (open it with `rerun {path}`)")
