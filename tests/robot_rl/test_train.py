"""The training job end to end on the real panda-reach task, with a tiny model: logs, checkpoints and
`robot-rl eval` (resume after a SIGKILL: tests/robot_rl/test_training_engine.py)."""
import csv
from pathlib import Path

import numpy as np
import torch

from robot_rl.cli import main
from robot_rl.checkpoint import load_checkpoint

TINY = ["task=panda-reach", "model_size=1M", "enc_dim=32", "mlp_dim=32", "latent_dim=16", "batch_size=16",
        "planner.samples=16", "planner.policy_samples=2", "planner.elites=4", "planner.iterations=1",
        "seed_steps=80", "eval_every=80", "checkpoint_every=80", "eval_episodes=1", "progress=false",
        "threads=1", "seed=3", "envs=1", "updates_per_step=1"]


def rows(path: Path) -> list[dict]:
    with path.open() as f:
        return [{k: v for k, v in r.items() if k != "steps_per_s"} for r in csv.DictReader(f)]


def test_train_writes_logs_checkpoint_and_evaluates(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "steps=120", f"out={out}"]) == 0
    for name in ("agent.pt", "buffer.npz", "config.yaml", "train.csv", "eval.csv"):
        assert (out / name).is_file(), name
    assert list((out / "tb").glob("events.out.tfevents.*"))
    train_rows = rows(out / "train.csv")
    assert [int(r["step"]) for r in train_rows] == [40, 80, 120]
    assert {"return", "success", "consistency_loss", "value_loss", "pi_loss"} <= set(train_rows[-1])
    payload = load_checkpoint(out / "agent.pt")
    assert payload["step"] == 120 and payload["env"]["robot"] == "panda"
    assert payload["env"]["obs_layout"] and payload["config"]["task"] == "panda-reach"
    capsys.readouterr()
    assert main(["eval", f"checkpoint={out / 'agent.pt'}", "episodes=2", "threads=1"]) == 0
    printed = capsys.readouterr().out
    assert "mean return" in printed and "success rate" in printed


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "steps=80", f"out={out}", "tensorboard=false"]) == 0
    assert main(["train", *TINY, "steps=160", f"out={out}", "resume=true", "mlp_dim=64",
                 "tensorboard=false"]) == 2
    assert "another task or agent config" in capsys.readouterr().out


def test_train_on_gym_and_pixel_tasks(tmp_path):
    quick = [a for a in TINY if not a.startswith(("task=", "seed_steps=", "eval_every=", "checkpoint_every="))]
    quick += ["seed_steps=30", "eval_every=0", "checkpoint_every=0", "tensorboard=false", "eval_episodes=1"]
    assert main(["train", *quick, "task=gym:Pendulum-v1", "steps=40", "planner.plan=false", f"out={tmp_path / 'pendulum'}"]) == 0
    assert load_checkpoint(tmp_path / "pendulum" / "agent.pt")["env"]["action_high"] == [2.0]
    assert main(["train", *quick, "task=panda-reach", "obs=state+pixels", "steps=40",
                 f"out={tmp_path / 'pixels'}"]) == 0
    spec = load_checkpoint(tmp_path / "pixels" / "agent.pt")["env"]["obs_spec"]
    assert spec["pixels"] == {"shape": [9, 64, 64], "dtype": "uint8"}  # 3 stacked frames by default


def test_fine_tune_starts_from_another_runs_agent_in_an_identified_simulator(tmp_path, capsys):
    """init= carries the agent and its replay buffer into a run on other robot parameters, with randomisation;
    init_buffer=false starts with a fresh buffer."""
    from calibration import hidden_arms
    from sim.robot import load_robot

    nominal = tmp_path / "nominal"
    assert main(["train", *TINY, "steps=80", "eval_every=0", "tensorboard=false", f"out={nominal}"]) == 0
    params = hidden_arms.write(tmp_path / "arm.yaml", hidden_arms.draw(5, load_robot("panda")), "panda")
    tuned = tmp_path / "tuned"
    # no updates: the fine-tuning run's agent is the nominal one, acting (not random) from its first step
    assert main(["train", *TINY, "steps=40", "seed_steps=40", "updates_per_step=0", "eval_every=0",
                 "tensorboard=false", f"init={nominal / 'agent.pt'}", f"params={params}", "randomize=true",
                 f"out={tuned}"]) == 0
    assert "starting from the agent in" in (out := capsys.readouterr().out) and "and its buffer" in out
    a, b = load_checkpoint(nominal / "agent.pt"), load_checkpoint(tuned / "agent.pt")
    for key, value in a["agent"]["model"].items():
        assert torch.equal(value, b["agent"]["model"][key]), key
    assert b["config"]["params"] == str(params) and b["step"] == 40
    fresh = tmp_path / "fresh"
    assert main(["train", *TINY, "steps=40", "seed_steps=40", "updates_per_step=0", "eval_every=0",
                 "tensorboard=false", f"init={nominal / 'agent.pt'}", "init_buffer=false", f"params={params}",
                 "randomize=true", f"out={fresh}"]) == 0
    assert "and its buffer" not in capsys.readouterr().out

    def entries(run: Path) -> int:
        with np.load(run / "buffer.npz") as buffer:
            return len(buffer["episode"])
    assert entries(fresh) > 0 and entries(tuned) == entries(nominal) + entries(fresh)
    # another architecture is refused with the keys to use
    assert main(["train", *TINY, "steps=40", "mlp_dim=64", "tensorboard=false", f"init={nominal / 'agent.pt'}",
                 f"out={tmp_path / 'bad'}"]) == 2
    assert "use the same model_size/enc_dim/mlp_dim/latent_dim/num_q" in capsys.readouterr().out
