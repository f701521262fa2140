"""Learning on the robot (robot_rl/training/robot_run.py) over real DDS on loopback against a real sim_robot_node
process: a short run completes episodes with resets and records MCAP bags; a run killed by SIGKILL mid-episode
resumes without losing a transition; teleoperated steps land flagged in the demo buffer; stale joint states (the
robot process stopped) end the episode and are not trained on; bad input gives a clear error and the arm holds.
The journal, the Transitions intervention flag and the intervention sampler are checked on their own first."""
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cyclonedds.domain import Domain

from hardware import messages as m
from hardware.recording import read_bag
from hardware.transport.base import QOS_SENSOR_DATA
from hardware.transport.dds import DdsExecutor, DdsNode, local_only_config, private_domain_id, spin_in_thread
from robot_rl.cli import main
from robot_rl.replay_buffer import ReplayBuffer
from robot_rl.train import Config, TrainConfigError, check_config
from robot_rl.training.journal import MAGIC, Journal, JournalError, count_steps, episodes_after, read_frames
from robot_rl.training.learner import Learner
from robot_rl.training.robot_run import read_episode_steps
from robot_rl.training.samplers import InterventionSampler
from robot_rl.training.transitions import Transitions

ROOT = Path(__file__).resolve().parents[2]
TINY = ["task=panda-reach", "model_size=1M", "enc_dim=32", "mlp_dim=32", "latent_dim=16", "batch_size=16",
        "planner.samples=16", "planner.policy_samples=2", "planner.elites=4", "planner.iterations=1",
        "progress=false", "threads=1", "seed=3", "tensorboard=false", "seed_steps=40", "eval_every=0",
        "eval_episodes=0", "updates_per_step=0.5"]
EPISODE = 40   # panda-reach steps per episode


# ---------------------------------------------------------------- the parts on their own
def block(episode: int, n: int, first: bool = False, last: bool = False, intervention: bool = False) -> Transitions:
    rows = [{"episode": episode, "first": first and i == 0, "obs": {"state": np.full(3, i, np.float32)},
             "action": np.full(2, 0.1, np.float32), "reward": float(i), "terminated": False,
             "last": last and i == n - 1, "intervention": intervention} for i in range(n)]
    return Transitions.from_records(rows, ["state"], 2)


def test_transitions_carry_the_intervention_flag_and_read_older_blocks():
    t = Transitions.concat([block(0, 2, first=True), block(0, 3, intervention=True)])
    assert t.intervention.tolist() == [False, False, True, True, True]
    back = Transitions.from_bytes(t.to_bytes())
    assert back.intervention.tolist() == t.intervention.tolist()
    old = {k: v for k, v in np.load(io.BytesIO(t.to_bytes())).items() if k != "intervention"}
    buf = io.BytesIO()
    np.savez(buf, **old)   # a block written before the flag existed
    assert not Transitions.from_bytes(buf.getvalue()).intervention.any()


def test_journal_drops_a_torn_last_frame_and_closes_a_cut_episode(tmp_path):
    path = tmp_path / "journal.bin"
    j = Journal(path)
    j.write(block(0, 1, first=True))
    j.write(block(0, 2, last=True))
    j.write(block(1, 1, first=True))
    j.write(block(1, 3))
    j.end_episode(1, "fault: stale")
    j.write(block(2, 1, first=True))
    j.write(block(2, 2))
    j.close()
    whole = path.stat().st_size
    with open(path, "ab") as f:   # a crash in the middle of writing the next frame
        f.write(MAGIC + b"T\x00\x10")   # a header cut short
    frames = read_frames(path)
    assert len(frames) == 7 and count_steps(frames) == 7
    episodes = list(episodes_after(frames, 0))
    assert [(int(b.episode[0]), len(b), how) for b, how in episodes] == [(0, 3, "done"), (1, 4, "fault: stale"),
                                                                        (2, 3, "cut")]
    assert all(b.last[-1] and not b.last[:-1].any() for b, _ in episodes)
    assert [int(b.episode[0]) for b, _ in episodes_after(frames, 2)] == [1, 2]   # after a checkpoint at frame 2
    again = Journal(path)   # reopening cuts the torn tail before appending
    assert again.dropped_bytes > 0 and path.stat().st_size == whole and again.frames == 7
    again.write(block(2, 1, last=True))
    again.close()
    assert [how for _, how in episodes_after(read_frames(path), 0)][-1] == "done"
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF   # damage inside the first frame: not a torn tail
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError, match="frame 0 .* corrupt"):
        read_frames(path)


def test_intervened_stretches_go_to_the_demo_buffer_and_are_mixed_into_batches():
    spec = {"state": ((3,), "float32")}
    buffer, demos = ReplayBuffer(1000, spec, 2, 3, seed=0), ReplayBuffer(1000, spec, 2, 3, seed=1)
    learner = Learner(None, buffer, None, demos=demos)   # ingesting needs no agent
    flags = [False] * 4 + [True] * 5 + [False] * 3 + [True] * 2 + [False]   # a 5-step and a 2-step stretch
    rows = [{"episode": 0, "first": True, "obs": {"state": np.zeros(3, np.float32)}, "action": np.zeros(2),
             "reward": 0.0, "terminated": False, "last": False}]
    rows += [{"episode": 0, "first": False, "obs": {"state": np.full(3, t + 1, np.float32)},
              "action": np.full(2, 0.5 if f else -0.5), "reward": float(t), "terminated": False,
              "last": t == len(flags) - 1, "intervention": f} for t, f in enumerate(flags)]
    learner.ingest(Transitions.from_records(rows, ["state"], 2))
    assert len(buffer) == len(flags) + 1
    assert learner.demo_segments == 1 and demos.episodes == 1 and len(demos) == 6   # 5 actions, 6 observations
    np.testing.assert_array_equal(demos.obs["state"][:6, 0], np.arange(4, 10))   # taken over at obs 4
    assert np.all(demos.action[1:6] == 0.5)
    sampler = InterventionSampler(buffer, demos, 0.5, "cpu", seed=0)
    batch = sampler.sample(64, 0)
    assert 16 < sampler.last_demo_count < 48
    assert torch.all(batch.action[:, :sampler.last_demo_count] == 0.5)


def cube_never_done(observation, task_state):
    """A detector as a user plugs one in (`detector=module:callable`): the task state's dense reward, no success."""
    return float(task_state["dense_reward"]), False


def constant_penalty(observation, task_state):
    """A detector whose rewards are recognisable in the logs."""
    assert observation.state.shape == (24,) and observation.q.shape == (7,)
    return -1.0, False


def test_a_detector_is_loaded_by_name_and_bad_ones_are_refused():
    from robot_rl.training.robot_env import RobotEnvError, load_detector

    assert load_detector(f"{__name__}:cube_never_done") is cube_never_done
    assert load_detector("") is None
    for spec, why in (("nomodule", "module:callable"), ("json:nothing_here", "cannot load"),
                      ("json:__doc__", "not callable")):
        with pytest.raises(RobotEnvError, match=why):
            load_detector(spec)


def test_bad_train_keys_name_the_key():
    for pairs, key in (({"robot": "foo"}, "robot="), ({"robot": "dds", "demo_ratio": 2.0}, "demo_ratio"),
                       ({"robot": "dds", "robot_acting": "mpc"}, "robot_acting"),
                       ({"detector": "x:y"}, "detector"), ({"robot": "dds", "envs": 4}, "envs"),
                       ({"robot": "dds", "robot_config": "/nowhere.yaml"}, "robot_config")):
        with pytest.raises(TrainConfigError, match=key):
            check_config(Config(**pairs))
    assert main(["train", *TINY, "robot=foo"]) == 2


def test_a_planner_too_slow_for_the_control_period_is_refused_before_the_robot_is_touched(tmp_path, capsys):
    """512 samples x 6 iterations (the paper's planner) of the CPU preset's model: far beyond half of the 50 ms period
    on a CPU."""
    assert main(["train", "task=panda-reach", "robot=dds", "robot_acting=planner", "planner.samples=512",
                 "planner.iterations=6", "threads=1", "progress=false", f"out={tmp_path / 'run'}"]) == 2
    printed = capsys.readouterr().out
    assert "robot_acting=planner: the planner takes" in printed and "use robot_acting=policy" in printed
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- on the robot
@pytest.fixture(scope="module")
def robot(tmp_path_factory):
    """A sim_robot_node process (panda-reach, task states at the control rate) on a private loopback domain, and
    robot link settings whose stale-data timeout (250 ms, policy_node's default is 100) tolerates this shared
    machine's scheduling, so only the stale data a test injects ends an episode."""
    link = tmp_path_factory.mktemp("link") / "link.yaml"
    link.write_text("safety:\n  observation_timeout_s: 0.25\n")
    domain = private_domain_id()
    handle = Domain(domain, local_only_config())
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "CYCLONEDDS_URI": local_only_config(),
           "ROBOT_RL_TRANSPORT": "dds", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "hardware.nodes.sim_robot_node", "--ros-args", "-p", "task:=reach",
                             "-p", "task_rate_hz:=20.0"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    listener = DdsNode("listener", domain_id=domain)
    states = []
    listener.create_subscription(m.JointState, "/joint_states", states.append, QOS_SENSOR_DATA)
    executor = DdsExecutor([listener])
    try:
        assert executor.spin_until(lambda: len(states) > 5, timeout_s=60), "sim_robot_node did not start"
    finally:
        executor.shutdown()
        listener.destroy()
    yield {"domain": domain, "proc": proc, "env": env, "link": link}
    proc.send_signal(signal.SIGCONT)
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)
    del handle


def robot_run(robot, out: Path, *extra: str, link: Path | None = None) -> list[str]:
    return ["train", *TINY, "robot=dds", f"robot_domain={robot['domain']}", f"out={out}",
            f"robot_config={link or robot['link']}", *extra]


def buffer_steps(out: Path, name: str = "buffer.npz") -> tuple[int, int]:
    """(environment steps, episodes) in a saved replay buffer."""
    spec = {"state": ((24,), "float32")}
    buffer = ReplayBuffer(1_000_000, spec, 8, 3)
    buffer.load(out / name)
    return len(buffer) - buffer.episodes, buffer.episodes


def test_a_short_run_completes_episodes_with_resets_and_records_bags(robot, tmp_path):
    out = tmp_path / "run"
    assert main(robot_run(robot, out, "steps=80", "checkpoint_every=40",
                          f"detector={__name__}:constant_penalty")) == 0
    frames = read_frames(out / "journal.bin")
    assert count_steps(frames) == 80
    assert buffer_steps(out) == (80, 2)
    bags = sorted((out / "bags").glob("episode_*"))
    assert [b.name for b in bags] == ["episode_000000", "episode_000001"]
    steps = read_episode_steps(out / "bags")
    assert len(steps) == 82 and sum(not s.get("fault") for s in steps if s["step"] > 0) == 80   # + 2 resets
    states = [msg for _, _, msg in read_bag(bags[0], topics=["/joint_states"])]
    assert len(states) == EPISODE + 1 and list(states[0].name)[:1] == ["panda_joint1"]
    commands = [msg for _, _, msg in read_bag(bags[0], topics=["/robot_rl/joint_command"])]
    assert len(commands) == EPISODE and all(len(c.data) == 7 for c in commands)   # the command of every step
    rows = (out / "train.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 3 and {"reset_s", "late", "missed_deadlines", "updates_per_step"} <= set(header)
    assert float(rows[-1].split(",")[header.index("reset_s")]) > 0
    assert [float(r.split(",")[header.index("return")]) for r in rows[1:]] == [-EPISODE, -EPISODE]   # the detector's


def journal_episodes(out: Path) -> list[tuple[Transitions, str]]:
    return list(episodes_after(read_frames(out / "journal.bin"), 0)) if (out / "journal.bin").exists() else []


def test_a_killed_run_resumes_without_losing_a_transition(robot, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.cli", *robot_run(robot, out, "steps=100000",
                                                                              "checkpoint_every=40")],
                            env=robot["env"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:   # kill 10-25 steps into an episode (0.75 s before its end), after a checkpoint
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the run did not get to its second episode"
            episodes = journal_episodes(out)
            if (out / "agent.pt").exists() and len(episodes) >= 2 and episodes[-1][1] == "cut" and \
                    10 <= (~episodes[-1][0].first).sum() <= 25:
                break
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(10)
    before = journal_episodes(out)
    cut_episode, cut_steps = int(before[-1][0].episode[0]), int((~before[-1][0].first).sum())
    journaled = count_steps(read_frames(out / "journal.bin"))
    assert before[-1][1] == "cut" and cut_steps >= 10
    assert main(robot_run(robot, out, "resume=true", f"steps={journaled + 1}", "checkpoint_every=40")) == 0
    frames = read_frames(out / "journal.bin")
    episodes = list(episodes_after(frames, 0))
    cut = [(int(b.episode[0]), int((~b.first).sum())) for b, how in episodes if how.startswith("cut")]
    assert cut == [(cut_episode, cut_steps)]   # the killed episode, closed as truncated, whole
    steps, n_episodes = buffer_steps(out)
    assert steps == count_steps(frames) > journaled and n_episodes == len(episodes)
    # every closed episode's bag holds its journaled steps; the killed one's bag never closed, the journal has it
    bagged: dict[int, int] = {}
    for row in read_episode_steps(out / "bags"):
        bagged[row["episode"]] = bagged.get(row["episode"], 0) + (row["step"] > 0 and not row.get("fault"))
    journal_steps = {int(b.episode[0]): int((~b.first).sum()) for b, _ in episodes}
    assert cut_episode not in bagged and bagged == {e: n for e, n in journal_steps.items() if e != cut_episode}


def in_process_run(robot, out: Path, *extra: str):
    """An on-robot run in this process (so a test can watch its episode and step counters)."""
    from robot_rl.overrides import build
    from robot_rl.train import default_layer
    from robot_rl.training.robot_run import OnRobotRun

    pairs = dict(a.split("=", 1) for a in robot_run(robot, out, *extra)[1:])
    torch.set_num_threads(1)
    return OnRobotRun(build(Config, default_layer(pairs), pairs), torch.device("cpu"))


def run_beside(run, robot, node: DdsNode, participant, done: threading.Event) -> dict | None:
    """run.run() while `participant` (a thread) acts on the robot's domain through `node`; the robot process is
    left running (SIGCONT) and the node destroyed whatever happens."""
    executor = DdsExecutor([node])
    spinner = spin_in_thread(executor)
    thread = threading.Thread(target=participant, daemon=True)
    thread.start()
    try:
        return run.run()
    finally:
        done.set()
        robot["proc"].send_signal(signal.SIGCONT)
        thread.join(10)
        executor.shutdown()
        spinner.join(5)
        node.destroy()


def test_interventions_land_in_the_demo_buffer_and_a_fault_step_is_not_trained_on(robot, tmp_path):
    """Episode 1 is driven by a teleop node (a constant action at 50 Hz); in episode 2 the robot process stops
    for 0.4 s (its joint states go stale): that episode ends at the fault, whose step is in the bag only."""
    out = tmp_path / "run"
    run = in_process_run(robot, out, "steps=120", "checkpoint_every=0")
    teleop_node = DdsNode("teleop", domain_id=robot["domain"])
    teleop = teleop_node.create_publisher(m.Float64MultiArray, "/teleop/action")
    action = [0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    done = threading.Event()

    def drive():
        stopped = False
        while not done.is_set():
            if run.running_episode == 1:
                teleop.publish(m.float64_multi_array(action))
            if run.running_episode == 2 and run.step >= 2 * EPISODE + 10 and not stopped:
                stopped = True
                robot["proc"].send_signal(signal.SIGSTOP)
                time.sleep(0.4)
                robot["proc"].send_signal(signal.SIGCONT)
            time.sleep(0.02)

    summary = run_beside(run, robot, teleop_node, drive, done)
    assert summary is not None
    frames = read_frames(out / "journal.bin")
    by_episode = {int(b.episode[0]): (b, how) for b, how in episodes_after(frames, 0)}
    driven, _ = by_episode[1]
    steps = ~driven.first
    assert driven.intervention[steps].mean() > 0.8   # all but the first step or two (teleop starts with the episode)
    np.testing.assert_allclose(driven.action[steps & driven.intervention], np.array([action] * int(
        (steps & driven.intervention).sum()), np.float32))
    assert not by_episode[0][0].intervention.any()
    assert run.demos.episodes >= 1 and run.learner.demo_segments >= 1
    assert np.allclose(run.demos.action[1:run.demos.horizon + 1], action)
    faulted, how = by_episode[2]
    assert how.startswith("fault: ") and "stale" in how
    assert (~faulted.first).sum() < EPISODE
    bag_rows = [r for r in read_episode_steps(out / "bags") if r["episode"] == 2]
    faults = [r for r in bag_rows if r.get("fault")]
    assert len(faults) == 1 and faults[0]["step"] == (~faulted.first).sum() + 1   # recorded, not journaled
    steps_in_buffer, _ = buffer_steps(out)
    assert steps_in_buffer == count_steps(frames)   # the fault step is nowhere in the buffer
    assert summary["faults"] and summary["commands_outside_limits"] == 0


def test_an_e_stop_holds_the_run_until_the_operator_clears_it_then_it_goes_on(robot, tmp_path, capsys):
    """The e-stop pressed in episode 1: the episode ends at the fault, the next reset is refused while it is
    latched, and the run holds and waits (robot_wait_s) instead of stopping; released and reset by the operator,
    it goes on to its step budget."""
    run = in_process_run(robot, tmp_path / "run", "steps=120", "checkpoint_every=0", "robot_wait_s=30")
    operator_node = DdsNode("operator", domain_id=robot["domain"])
    estop = operator_node.create_publisher(m.Bool, "/estop")
    estop_reset = operator_node.create_publisher(m.Bool, "/estop_reset")
    done, cleared = threading.Event(), threading.Event()

    def operator():
        while not done.is_set() and not (run.running_episode == 1 and run.step >= EPISODE + 10):
            time.sleep(0.01)
        estop.publish(m.Bool(data=True))
        time.sleep(2.0)                      # the run must be waiting now, not gone
        estop.publish(m.Bool(data=False))
        time.sleep(0.2)
        cleared.set()
        estop_reset.publish(m.Bool(data=True))

    summary = run_beside(run, robot, operator_node, operator, done)
    printed = capsys.readouterr().out
    assert summary is not None and cleared.is_set()
    assert "holding and waiting up to 30 s" in printed and "the robot is back" in printed
    assert run.step >= 120 and any("estop" in kind for kind in summary["faults"])
    assert summary["commands_outside_limits"] == 0


def test_a_robot_that_does_not_answer_gives_a_clear_error(robot, tmp_path, capsys):
    cfg = tmp_path / "link.yaml"
    cfg.write_text("connect_timeout_s: 1.0\nreset_timeout_s: 1.0\n")
    # no robot on this domain
    lonely = private_domain_id()
    handle = Domain(lonely, local_only_config())
    assert main(["train", *TINY, "robot=dds", f"robot_domain={lonely}", f"robot_config={cfg}",
                 f"out={tmp_path / 'a'}", "steps=40"]) == 2
    del handle
    assert "/joint_states: no joint states within connect_timeout_s=1" in capsys.readouterr().out
    # the robot's joints named otherwise
    names = tmp_path / "names.yaml"
    names.write_text("connect_timeout_s: 1.0\nhardware_joint_names: [" + ", ".join(f"arm_j{i}" for i in range(7))
                     + "]\n")
    assert main(robot_run(robot, tmp_path / "b", "steps=40", link=names)) == 2
    printed = capsys.readouterr().out
    assert "without the policy's joints" in printed and "arm_j1" in printed
    # a reset whose ready never comes
    never = tmp_path / "never.yaml"
    never.write_text("reset_timeout_s: 1.0\nscene_ready_topic: /nobody/ready\n")
    assert main(robot_run(robot, tmp_path / "c", "steps=40", link=never)) == 2
    printed = capsys.readouterr().out
    assert "/nobody/ready: no ready" in printed and "the arm holds" in printed
    assert not list((tmp_path / "c" / "bags").glob("episode_*"))   # no half-written recording
