"""Learning on the robot: `robot-rl train robot=dds task=panda-reach ...` drives a real (or sim_robot_node) arm
through robot_rl/training/robot_env.py while a learner updates in parallel.

- The actor (this thread) acts at the control rate with an acting copy of the agent: the policy prior
  (`robot_acting=policy`, the default) or the MPPI planner (`robot_acting=planner`, refused unless its measured
  p95 time fits `PLANNER_SHARE` of the control period); random actions while seeding unless `init=` gives a
  trained agent. Weights come from the learner between episodes (or every `weights_every` steps).
- The learner (a background thread) samples and updates, trying to keep `updates_per_step` updates per robot
  step once seeding has ended (it catches up on the seeding data in the background); what it achieved is
  logged. torch runs with `threads` (1 by default here) intra-op threads, so the actor is not starved.
- Interventions: steps the teleop drove are flagged; they go into the main buffer and, as stretches of at least
  `horizon` steps, into a demo buffer; batches mix both (`demo_ratio`, HIL-SERL's 50/50 by default).
- Nothing lost: every transition is appended to `journal.bin` (flushed per step, fsynced per episode;
  robot_rl/training/journal.py) and recorded in a rosbag2 MCAP per episode (`bags/episode_NNNNNN`: the joint
  state the observation was built from, the joint command sent, the policy's and
  the applied action, reward/success/intervention/fault); buffers and agent are checkpointed at episode ends.
  `resume=true` loads the checkpoint and re-ingests every journaled transition after it (an episode the crash
  cut, as truncated). A fault step (stale joint states, e-stop, safety fault, lost link) is recorded in the bag
  but never journaled or trained on; its episode ends there.

Missed control deadlines, resets and their durations, interventions and faults are counted by the link and
reported in train.csv and the final summary (printed, and `summary.json` in the run folder). `steps=0` with
`init=` only evaluates an agent on the robot (`eval_episodes` deterministic episodes).
"""
from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from robot_rl.replay_buffer import ReplayBuffer
from robot_rl.training.journal import Journal, count_steps, episodes_after, read_frames
from robot_rl.training.learner import Learner, load_weights
from robot_rl.training.robot_env import RobotEnv, RobotSetup, load_detector, open_robot_env, robot_setup
from robot_rl.training.samplers import InterventionSampler
from robot_rl.training.strategies import AgentActing, RandomActing
from robot_rl.training.transitions import Transitions

PLANNER_SHARE = 0.5          # the planner may take at most this share of the control period (p95, measured)
PLANNER_PROBES = 20          # planner calls timed before the run starts
# The learner thread's Python holds the GIL for up to the switch interval (5 ms by default) each time the actor
# wants it back (after every DDS call, file write or sleep); 1 ms keeps the actor's waits short.
ACTOR_SWITCH_INTERVAL_S = 0.001
STEP_TOPIC = "/robot_rl/step"                 # std_msgs/String JSON per step (bag)
POLICY_ACTION_TOPIC = "/robot_rl/policy_action"
APPLIED_ACTION_TOPIC = "/robot_rl/applied_action"
JOINT_STATE_TOPIC = "/joint_states"
COMMAND_TOPIC = "/robot_rl/joint_command"     # the arm targets sent, when the link reports them


class RobotRunError(ValueError):
    """On-robot settings that cannot run (e.g. a planner too slow for the control period)."""


@dataclass
class LearnerStats:
    updates: int = 0
    update_s: float = 0.0
    errors: list = field(default_factory=list)


class BackgroundLearner:
    """The learner's update loop on its own thread: keeps updates <= updates_per_step x (steps past seeding +
    the seeding burst); samples under the buffer lock, updates under the model lock."""

    def __init__(self, learner: Learner, ratio: float, seed_steps: int, buffer_lock: threading.Lock,
                 model_lock: threading.Lock):
        self.learner, self.ratio, self.seed_steps = learner, ratio, seed_steps
        self.buffer_lock, self.model_lock = buffer_lock, model_lock
        self.steps = 0                     # robot steps so far (set by the actor)
        self.stats = LearnerStats(updates=learner.updates)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="learner", daemon=True)

    def owed(self) -> int:
        return int(self.ratio * self.steps) if self.steps >= self.seed_steps else 0

    def _loop(self) -> None:
        agent, learner = self.learner.agent, self.learner
        try:
            while not self.stop.is_set():
                if learner.updates >= self.owed() or len(learner.buffer) == 0:
                    self.stop.wait(0.005)
                    continue
                t0 = time.perf_counter()
                with self.buffer_lock:
                    batch = learner.sampler.sample(agent.cfg.batch_size, self.steps)
                with self.model_lock:
                    learner.metrics = agent.update(batch)
                learner.updates += 1
                self.stats.update_s += time.perf_counter() - t0
        except Exception as err:  # reported by the actor, which stops the run safely
            self.stats.errors.append(f"{type(err).__name__}: {err}")

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(30)


class EpisodeBag:
    """One episode's rosbag2 MCAP recording (closed at the episode's end, so a crash loses at most the running
    episode's bag; the journal still holds its transitions)."""

    def __init__(self, folder: Path, episode: int, setup: RobotSetup):
        from hardware.recording import BagWriter

        self.bag = BagWriter(folder / f"episode_{episode:06d}")
        self.episode, self.setup = episode, setup

    def write(self, step: int, observation, policy_action, row: dict) -> None:
        from hardware import messages as m

        stamp = int(observation.stamp_ns)
        io = self.setup.io
        self.bag.write(JOINT_STATE_TOPIC, stamp, m.joint_state(io.joint_names, observation.q, stamp_ns=stamp))
        if policy_action is not None:
            self.bag.write(POLICY_ACTION_TOPIC, stamp, m.float64_multi_array(np.asarray(policy_action, float)))
        if "applied_action" in row:
            self.bag.write(APPLIED_ACTION_TOPIC, stamp, m.float64_multi_array(row["applied_action"]))
        if row.get("command") is not None:
            self.bag.write(COMMAND_TOPIC, stamp, m.float64_multi_array(row["command"]))
        self.bag.write(STEP_TOPIC, stamp, m.String(data=json.dumps({"episode": self.episode, "step": step, **row})))

    def close(self) -> None:
        self.bag.close()

    def abort(self) -> None:
        """Drop the recording (its episode never started)."""
        self.bag.abort()


def read_episode_steps(folder: str | Path) -> list[dict]:
    """The per-step rows of every episode bag in `folder` (bags/), in order."""
    from hardware.recording import read_bag

    rows = []
    for bag in sorted(Path(folder).glob("episode_*")):
        rows += [json.loads(msg.data) for _, _, msg in read_bag(bag, topics=[STEP_TOPIC])]
    return rows


def measure_act(acting, obs: dict[str, np.ndarray], probes: int = PLANNER_PROBES, budget_s: float = 2.0
                ) -> np.ndarray:
    """Seconds per acting call on one observation, `probes` times after one warm-up call (fewer, at least 3,
    when they take more than `budget_s` together: a planner that slow is judged already)."""
    batched = {k: v[None] for k, v in obs.items()}
    acting.act(batched, np.array([True]), np.array([0]), 0)
    times: list[float] = []
    while len(times) < probes and (len(times) < 3 or sum(times) < budget_s):
        t0 = time.perf_counter()
        acting.act(batched, np.array([False]), np.array([0]), 0)
        times.append(time.perf_counter() - t0)
    return np.asarray(times)


class OnRobotRun:
    """One on-robot training run (robot_rl/train.py builds it for `robot=dds|ros2`)."""

    def __init__(self, config, device: torch.device):
        from robot_rl.agent import TDMPC2
        from robot_rl.agent_config import agent_config_of

        self.config, self.device = config, device
        self.setup = robot_setup(config.task, config.obs, config.frame_stack, config.action, config.action_history)
        info = self.info = self.setup.info
        self.out = Path(config.out or f"runs/{config.task}-robot-s{config.seed}")
        self.agent_cfg = agent_config_of(config)
        torch.manual_seed(config.seed)
        self.agent = TDMPC2(self.agent_cfg, info.model_obs_spec, info.action_dim, info.episode_length, device)
        # the acting copy: the policy prior or the planner (robot_acting), with the learner's weights
        self.acting_cfg = replace(self.agent_cfg, planner=replace(self.agent_cfg.planner,
                                                                  plan=config.robot_acting == "planner"))
        self.actor = TDMPC2(self.acting_cfg, info.model_obs_spec, info.action_dim, info.episode_length, device)
        self._new_buffers()
        self.learner = Learner(self.agent, self.buffer, self.sampler, demos=self.demos)
        self.seed_steps = config.seed_steps or max(1000, 5 * info.episode_length)
        self.acting = AgentActing(self.actor, 1)
        self.eval_acting = AgentActing(self.actor, 1, eval_mode=True)
        self.seeding = RandomActing(info.action_dim, config.seed)
        self.detector = load_detector(config.detector)
        self.buffer_lock, self.model_lock = threading.Lock(), threading.Lock()
        self.step = 0                 # robot steps trained on (journaled)
        self.episodes = 0             # training episodes finished
        self.next_episode = 0
        self.running_episode: int | None = None   # the training episode whose steps are being taken
        self.elapsed_before = 0.0
        self.journal: Journal | None = None
        self.ingested_frames = 0      # journal frames whose transitions are all in the buffers
        self.last_eval: dict = {}
        self.summary: dict = {}

    # ---- persistence ----
    @property
    def ckpt_path(self) -> Path:
        return self.out / "agent.pt"

    def checkpoint(self) -> None:
        """Buffers first, then agent.pt naming what they hold and how many journal frames that is; a crash
        between the two leaves a pair whose counts disagree, and resume then rebuilds the buffers from the
        journal instead."""
        from robot_rl.checkpoint import save_checkpoint
        from robot_rl.overrides import to_dict

        with self.buffer_lock, self.model_lock:
            self.buffer.save(self.out / "buffer.npz")
            self.demos.save(self.out / "demos.npz")
            extra = {"journal_frames": self.ingested_frames, "buffer_episodes": self.buffer.episodes,
                     "demo_episodes": self.demos.episodes, "next_episode": self.next_episode,
                     "updates": self.learner.updates, "seeding": self.seeding.state(),
                     "sampler": self.sampler.state(), "elapsed_s": self.elapsed, "last_eval": self.last_eval,
                     "robot": True}
            save_checkpoint(self.ckpt_path, self.agent, self.info, to_dict(self.config), self.step, self.episodes,
                            extra)

    def restore(self) -> dict:
        """resume=true: the checkpoint (if any), then every journaled episode after it. Returns what was
        re-ingested: {"episodes", "steps", "cut"}."""
        from robot_rl.checkpoint import CheckpointError, load_checkpoint
        from robot_rl.overrides import to_dict

        frames = read_frames(self.journal.path)
        start = 0
        if self.ckpt_path.exists():
            payload = load_checkpoint(self.ckpt_path)
            if payload["agent_config"] != to_dict(self.agent_cfg) or payload["env"]["task"] != self.config.task:
                raise CheckpointError(f"{self.ckpt_path}: was trained with another task or agent config; "
                                      "resume with the same keys or use a new out=")
            extra = payload["extra"]
            if not extra.get("robot"):
                raise CheckpointError(f"{self.ckpt_path}: not an on-robot run's checkpoint (use init= to start "
                                      f"from its agent)")
            self.agent.load_state_dict(payload["agent"])
            self.learner.updates = extra["updates"]
            self.seeding.load_state(extra["seeding"])
            self.sampler.load_state(extra["sampler"])
            self.elapsed_before, self.last_eval = extra["elapsed_s"], extra["last_eval"]
            self.buffer.load(self.out / "buffer.npz")
            self.demos.load(self.out / "demos.npz")
            if (self.buffer.episodes, self.demos.episodes) == (extra["buffer_episodes"], extra["demo_episodes"]) \
                    and extra["journal_frames"] <= len(frames):
                start = extra["journal_frames"]
                self.step, self.episodes, self.next_episode = payload["step"], payload["episode"], \
                    extra["next_episode"]
            else:   # torn checkpoint (crash between its files): everything again from the journal
                print(f"{self.out}: buffers and agent.pt disagree; rebuilding the buffers from the journal")
                self._fresh_buffers()
        added = {"episodes": 0, "steps": 0, "cut": 0}
        cut = []
        with self.buffer_lock:
            for block, how in episodes_after(frames, start):
                if how == "cut":
                    cut.append(int(block.episode[0]))
                n = int(np.count_nonzero(~block.first))
                if n == 0:   # cut right after its reset: no step to learn from
                    continue
                self.learner.ingest(block)
                self.step += n
                self.episodes += 1
                self.next_episode = max(self.next_episode, int(block.episode[0]) + 1)
                added["episodes"] += 1
                added["steps"] += n
                added["cut"] += how == "cut"
        for e in cut:   # closed in the journal too, so a later resume reads it the same way
            self.journal.end_episode(e, "cut by a crash")
            self.next_episode = max(self.next_episode, e + 1)
        self.journal.sync()
        self.ingested_frames = self.journal.frames
        return added

    def _new_buffers(self) -> None:
        """Empty interaction and demo buffers and their sampler (self.buffer, self.demos, self.sampler)."""
        cfg, info, horizon = self.config, self.info, self.agent_cfg.horizon
        self.buffer = ReplayBuffer(cfg.buffer_size, info.obs_spec, info.action_dim, horizon, seed=cfg.seed)
        self.demos = ReplayBuffer(cfg.buffer_size, info.obs_spec, info.action_dim, horizon, seed=cfg.seed + 1)
        self.sampler = InterventionSampler(self.buffer, self.demos, cfg.demo_ratio, self.device, cfg.seed + 2)

    def _fresh_buffers(self) -> None:
        self._new_buffers()
        self.learner.buffer, self.learner.demos, self.learner.sampler = self.buffer, self.demos, self.sampler
        self.step = self.episodes = self.next_episode = 0

    def initialise_from(self, path: str) -> None:
        """init=: a trained agent (e.g. from simulation) and, with init_buffer, its replay buffer: the robot's
        transitions then mix with the simulated ones instead of overfitting a near-empty buffer."""
        from robot_rl.training.warm_start import warm_start

        loaded = warm_start(self.agent, self.info, path, self.buffer if self.config.init_buffer else None)
        print(f"starting from {loaded}")

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t_start

    def _hand_weights(self) -> None:
        with self.model_lock:
            blob = self.learner.weights()
        load_weights(self.actor, blob)

    # ---- acting ----
    def _acting(self):
        """Seeding with random actions (a fresh agent) until seed_steps, then the agent."""
        if not self.config.init and self.step < self.seed_steps:
            return self.seeding
        return self.acting

    def check_planner_fits(self, obs: dict[str, np.ndarray]) -> None:
        if not self.acting_cfg.planner.plan:
            return
        times = measure_act(self.acting, obs)
        p95, period = float(np.percentile(times, 95)), 1.0 / self.setup.control_hz
        print(f"planner: {1e3 * np.median(times):.1f} ms median, {1e3 * p95:.1f} ms p95 per action "
              f"({1e3 * period:.0f} ms period)")
        if p95 > PLANNER_SHARE * period:
            raise RobotRunError(f"robot_acting=planner: the planner takes {1e3 * p95:.1f} ms (p95 of "
                                f"{len(times)} calls) per action, more than {PLANNER_SHARE:.0%} of the "
                                f"{1e3 * period:.0f} ms control period; use robot_acting=policy or fewer "
                                f"planner.samples/iterations")

    def run_episode(self, env: RobotEnv, bags: Path, train: bool = True) -> dict:
        """One episode on the robot; training episodes are journaled, bagged and handed to the learner."""
        episode = self.next_episode if train else -1
        acting = self._acting() if train else self.eval_acting
        bag = EpisodeBag(bags, episode, self.setup) if train else None   # opened before the schedule starts
        t_reset = time.perf_counter()
        try:
            obs, _ = env.reset()
        except BaseException:
            if bag is not None:
                bag.abort()
            raise
        reset_s = time.perf_counter() - t_reset
        rows = [{"episode": episode, "first": True, "obs": obs, "action": np.zeros(self.info.action_dim, np.float32),
                 "reward": 0.0, "terminated": False, "last": False, "intervention": False}]
        if train:
            self.next_episode += 1
            self.journal.write(Transitions.from_records(rows, list(obs), self.info.action_dim))
            bag.write(0, env.last_observation, None, {"reward": 0.0, "success": False, "intervention": False})
        ret, success, fault, late, interventions, operator = 0.0, False, None, 0, 0, None
        first = True
        self.running_episode = episode if train else None
        while True:
            batched = {k: v[None] for k, v in obs.items()}
            action = np.asarray(acting.act(batched, np.array([first]), np.array([0]), self.step), np.float32)[0]
            first = False
            obs, reward, _, truncated, info = env.step(action)
            late += info["late"]
            row = {"reward": float(reward), "success": info["success"], "intervention": info["intervention"],
                   "applied_action": info["applied_action"].tolist(), "operator": info["operator"],
                   "fault": info["fault"], "late": info["late"], "safety_status": str(info["safety_status"]),
                   "command": env.link.last_command}
            if bag is not None:
                bag.write(env.steps, env.last_observation, action, row)
            if info["fault"] is not None:      # the arm holds; this step's data is not trained on
                fault = info["fault"]
                if train:
                    self.journal.end_episode(episode, f"fault: {fault}")
                break
            ret += reward
            success = info["success"]
            interventions += info["intervention"]
            operator = info["operator"]
            record = {"episode": episode, "first": False, "obs": obs, "action": info["applied_action"],
                      "reward": float(reward), "terminated": False, "last": bool(truncated),
                      "intervention": info["intervention"]}
            rows.append(record)
            if train:
                self.journal.write(Transitions.from_records([record], list(obs), self.info.action_dim))
                self.step += 1
                self.background.steps = self.step
                if self.config.weights_every and self.step % self.config.weights_every == 0:
                    self._hand_weights()
            if truncated:
                break
        self.running_episode = None
        if bag is not None:
            bag.close()
        steps = len(rows) - 1
        if train:
            self.journal.sync()
            if steps:
                rows[-1]["last"] = True
                with self.buffer_lock:
                    self.learner.ingest(Transitions.from_records(rows, list(obs), self.info.action_dim))
            self.ingested_frames = self.journal.frames
            self.episodes += 1
        return {"episode": episode, "return": ret, "success": float(success), "episode_steps": steps,
                "reset_s": reset_s, "late": late, "interventions": interventions, "fault": fault or "",
                "operator": operator or ""}

    def _wait_for_robot(self, env: RobotEnv, err: Exception) -> bool:
        """An episode the robot ended (connection lost, e-stop, a safety fault): hold and wait `robot_wait_s`
        for it to come back (fresh joint states, the stop cleared by the operator), then go on with a new
        episode; False (stop) when it does not, or when the robot is fine and the error is something else
        (e.g. a scene reset that never completes)."""
        why = env.link.why_unhealthy()
        if why is None or self.config.robot_wait_s <= 0:
            return False
        print(f"robot-rl train: {err}; holding and waiting up to {self.config.robot_wait_s:g} s: {why}")
        back = env.link.wait_until_healthy(self.config.robot_wait_s)
        if back:
            print("robot-rl train: the robot is back; continuing with a new episode")
        return back

    def evaluate(self, env: RobotEnv, bags: Path) -> dict:
        """`eval_episodes` deterministic episodes on the robot (not trained on)."""
        results = [self.run_episode(env, bags, train=False) for _ in range(self.config.eval_episodes)]
        self.last_eval = {"return": float(np.mean([r["return"] for r in results])),
                          "success": float(np.mean([r["success"] for r in results])),
                          "episodes": float(len(results)), "robot_s": self.elapsed}
        return self.last_eval

    # ---- the loop ----
    def run(self) -> dict | None:
        import yaml

        from hardware.robot_link import RobotLinkConfig, RobotLinkError
        from robot_rl.checkpoint import CheckpointError, atomic_write_bytes
        from robot_rl.overrides import to_dict
        from robot_rl.run_log import RunLog

        config = self.config
        link_config = RobotLinkConfig.from_dict(_load_yaml(config.robot_config), config.robot_config) \
            if config.robot_config else RobotLinkConfig()
        try:   # before the robot is touched
            self.check_planner_fits({k: np.zeros(s, d) for k, (s, d) in self.info.obs_spec.items()})
        except RobotRunError as err:
            print(f"robot-rl train: {err}")
            return None
        self.out.mkdir(parents=True, exist_ok=True)
        self.t_start = time.perf_counter()
        self.journal = Journal(self.out / "journal.bin")
        if self.journal.dropped_bytes:
            print(f"{self.journal.path}: dropped a torn last frame ({self.journal.dropped_bytes} bytes)")
        try:
            if config.resume and (self.ckpt_path.exists() or self.journal.frames):
                added = self.restore()
                print(f"resuming {self.out} at step {self.step} (episode {self.episodes}); re-ingested "
                      f"{added['episodes']} journaled episodes ({added['steps']} steps, {added['cut']} cut by the "
                      f"crash) after the checkpoint")
            elif self.journal.frames:
                raise CheckpointError(f"{self.journal.path}: a journal from an earlier run is there; resume=true "
                                      f"continues it, or use a new out=")
            elif config.init:
                self.initialise_from(config.init)
        except (CheckpointError, ValueError, FileNotFoundError) as err:
            self.journal.close()
            print(f"robot-rl train: cannot {'resume' if config.resume else 'start'}: {err}")
            return None
        self._hand_weights()
        atomic_write_bytes(self.out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False).encode())
        log = RunLog(self.out, resume_step=self.step if self.step else None, tensorboard=config.tensorboard)
        bags = self.out / "bags"
        self.background = BackgroundLearner(self.learner, config.updates_per_step, self.seed_steps,
                                            self.buffer_lock, self.model_lock)
        self.background.steps = self.step
        domain = config.robot_domain if config.robot_domain >= 0 else None
        link_stats: dict = {}
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(ACTOR_SWITCH_INTERVAL_S)
        try:
            with open_robot_env(self.setup, link_config, config.robot, domain, self.detector) as env:
                self.background.start()
                ckpt_mark, eval_mark = self.step, self.step
                while self.step < config.steps:
                    if self.background.stats.errors:
                        raise RuntimeError(f"learner thread: {self.background.stats.errors[0]}")
                    try:
                        row = self.run_episode(env, bags)
                    except RobotLinkError as err:
                        if not self._wait_for_robot(env, err):
                            raise
                        continue
                    self._hand_weights()
                    stats = env.link.stats()
                    row.update(updates=self.learner.updates, updates_per_step=self.learner.updates / max(self.step, 1),
                               missed_deadlines=stats.get("missed_deadlines", 0), robot_s=self.elapsed,
                               demo_segments=self.learner.demo_segments, **self.learner.logged_metrics())
                    log.log("train", self.step, row)
                    if config.progress:
                        print(f"episode {row['episode']}: {row['episode_steps']} steps, return {row['return']:.2f}, "
                              f"success {int(row['success'])}, reset {row['reset_s']:.2f} s, late {row['late']}, "
                              f"updates {self.learner.updates}{', fault ' + row['fault'] if row['fault'] else ''}")
                    if config.eval_every and self.step - eval_mark >= config.eval_every:
                        eval_mark = self.step
                        log.log("eval", self.step, {"episode": self.episodes, **self.evaluate(env, bags)})
                        print(f"step {self.step}: eval on the robot: success {self.last_eval['success']:.2f}")
                    if config.checkpoint_every and self.step - ckpt_mark >= config.checkpoint_every:
                        ckpt_mark = self.step
                        self.checkpoint()
                if config.eval_every == 0 or not self.last_eval or self.step != eval_mark:
                    if config.eval_episodes:
                        log.log("eval", self.step, {"episode": self.episodes, **self.evaluate(env, bags)})
                link_stats = env.link.stats()
        except RobotLinkError as err:
            print(f"robot-rl train: {err} (the arm is held)")
            return None
        finally:
            sys.setswitchinterval(switch_interval)
            self.background.close()
            if self.step:   # what the buffers hold; an episode an error cut stays in the journal for resume
                self.checkpoint()
            self.journal.close()
            log.close()
        achieved = self.learner.updates / max(self.step, 1)
        self.summary = {**self.last_eval, "step": self.step, "episodes": self.episodes,
                        "updates": self.learner.updates, "updates_per_step": achieved,
                        "missed_deadlines": link_stats.get("missed_deadlines", 0),
                        "resets": link_stats.get("resets", 0), "reset_s": list(link_stats.get("reset_s", [])),
                        "interventions": link_stats.get("interventions", 0), "faults": link_stats.get("faults", {}),
                        "commands_outside_limits": link_stats.get("commands_outside_limits", 0),
                        "demo_segments": self.learner.demo_segments, "robot_s": self.elapsed,
                        "journal_steps": count_steps(read_frames(self.journal.path))}
        atomic_write_bytes(self.out / "summary.json", json.dumps(self.summary, indent=1).encode())
        resets = self.summary["reset_s"]
        print(f"{config.task} on the robot: {self.step} steps in {self.episodes} episodes, {self.learner.updates} "
              f"updates ({achieved:.2f} per step, target {config.updates_per_step}), missed deadlines "
              f"{self.summary['missed_deadlines']}, resets {self.summary['resets']}"
              f"{f' ({np.mean(resets):.2f} s mean)' if resets else ''}, interventions "
              f"{self.summary['interventions']}, faults {self.summary['faults']}, eval success "
              f"{100 * self.last_eval.get('success', float('nan')):.0f}%  -> {self.out}")
        return self.summary


def _load_yaml(path: str) -> dict:
    from robot_rl.overrides import load_yaml

    return load_yaml(Path(path))
