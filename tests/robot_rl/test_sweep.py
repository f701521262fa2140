"""`robot-rl sweep` on a real local Ray (one session, 2 CPUs: tests/robot_rl/conftest.py) training real tiny
panda-reach runs: the aggregate, skipping finished runs and resuming killed ones after the driver is SIGKILLed,
and bad specs refused before anything starts."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robot_rl.cli import main
from robot_rl.overrides import build
from robot_rl.sweep import SweepError, aggregate, default_layer, execute, plan
from robot_rl.sweep_config import Config

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]
ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[2]
TINY = {"steps": 40, "envs": 1, "seed_steps": 40, "updates_per_step": 0.25, "eval_every": 0, "eval_episodes": 1,
        "checkpoint_every": 40, "tensorboard": False, "model_size": "1M", "mlp_dim": 32, "enc_dim": 32,
        "latent_dim": 16, "batch_size": 16, "horizon": 2, "planner.samples": 16, "planner.elites": 4,
        "planner.iterations": 1, "planner.policy_samples": 2, "planner.plan": False, "threads": 1}


def tiny(out: Path, **keys) -> Config:
    pairs = {"tasks": "panda-reach", "seeds": "1,2", "out": str(out), "progress": "false",
             **{f"train.{k}": v for k, v in TINY.items()}, **keys}
    return build(Config, default_layer(pairs), pairs)


def eval_rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_sweep_of_two_tiny_runs_writes_the_aggregate(tmp_path, ray_session):
    runs = plan(tiny(tmp_path))
    markers = execute(runs, progress=False)
    rows = aggregate(markers, tmp_path)
    assert [m["seed"] for m in markers] == [1, 2]
    assert all(m["result"]["step"] == 40 and (tmp_path / "runs" / m["name"] / "done.json").is_file() for m in markers)
    written = eval_rows(tmp_path / "sweep.csv")
    assert [(r["task"], r["method"], r["seed"], r["step"]) for r in written] == \
        [("panda-reach", "tdmpc2", "1", "40"), ("panda-reach", "tdmpc2", "2", "40")]
    assert len(rows) == 2 and all(0.0 <= float(r["success"]) <= 1.0 for r in written)
    assert "| panda-reach | tdmpc2 | 2 |" in (tmp_path / "sweep.md").read_text()
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_killed_sweep_skips_finished_runs_and_resumes_the_rest(tmp_path, ray_session):
    # Each run holds both CPUs, so they run one after the other; the driver is killed once the first has
    # finished and the second has checkpointed (step 40 of 120).
    config = tiny(tmp_path, **{"resources.cpus": "2", "train.steps": "120"})
    runs = plan(config)
    driver = ("import sys; from robot_rl.sweep import execute, plan; from tests.robot_rl.test_sweep import tiny; "
              f"execute(plan(tiny(sys.argv[1], **{{'resources.cpus': '2', 'train.steps': '120'}})), "
              f"address={ray_session!r}, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", driver, str(tmp_path)], cwd=ROOT, start_new_session=True)
    folders = [r.folder for r in runs]
    try:
        deadline = time.monotonic() + 400
        while not any((f / "done.json").is_file() and (g / "agent.pt").is_file() and not (g / "done.json").is_file()
                      for f, g in (folders, folders[::-1])):
            assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be killed"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done, killed = (folders if (folders[0] / "done.json").is_file() else folders[::-1])
    marker_before, log_before = (done / "done.json").read_bytes(), (done / "log.txt").read_text()
    deadline = time.monotonic() + 60  # Ray ends the dead driver's tasks; wait for their CPUs to come back
    while ray.available_resources().get("CPU", 0) < 2:
        assert time.monotonic() < deadline, "the killed driver's run still holds its CPUs"
        time.sleep(0.2)

    markers = execute(runs, progress=False)
    assert (done / "done.json").read_bytes() == marker_before and (done / "log.txt").read_text() == log_before
    assert "resuming" in (killed / "log.txt").read_text()
    assert [m["result"]["step"] for m in markers] == [120, 120]
    assert [r["step"] for r in eval_rows(killed / "eval.csv")] == ["120"]
    assert json.loads((killed / "done.json").read_text())["train"] == runs[folders.index(killed)].train


@pytest.mark.parametrize("args, message", [
    (["tasks=panda-nope"], "task='panda-nope': unknown"),
    (["train.stepz=10"], "unknown key 'train.stepz'"),
    (["seeds="], "seeds: empty"),
    (["bogus=1"], "unknown key 'bogus'"),
    (["methods=modem"], "set demos=<folder>"),
    (["train.eval_episodes=0"], "eval_episodes=0"),
])
def test_bad_spec_is_refused_before_anything_starts(tmp_path, capsys, args, message):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("tasks: [panda-reach]\nseeds: [1, 2]\ntrain: {steps: 40}\n")
    out = tmp_path / "out"
    assert main(["sweep", f"spec={spec}", f"out={out}", *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_spec_file_and_preset_layer_under_the_command_line(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("tasks: [panda-reach, gym:Pendulum-v1]\nseeds: [3]\ntrain: {steps: 40, batch_size: 32}\n")
    from robot_rl.overrides import load_yaml

    pairs = {"train.preset": "cpu", "train.batch_size": "16"}
    config = build(Config, default_layer({**load_yaml(spec), **pairs}), load_yaml(spec), pairs)
    runs = plan(config)
    cpu = load_yaml(ROOT / "robot_rl/presets/cpu.yaml")
    assert [(r.task, r.seed) for r in runs] == [("panda-reach", 3), ("gym:Pendulum-v1", 3)]
    assert runs[0].train["batch_size"] == 16 and runs[0].train["steps"] == 40      # command line > spec > preset
    assert runs[0].train["mlp_dim"] == cpu["mlp_dim"] and runs[0].train["device"] == "cpu"
    assert runs[1].name == "gym_Pendulum-v1-tdmpc2-s3" and runs[1].train["resume"] is True
    with pytest.raises(SweepError, match="appear more than once"):
        plan(build(Config, {"tasks": "panda-reach", "seeds": "1,1"}))


def test_ray_is_imported_only_when_a_sweep_or_remote_collector_runs():
    code = ("import sys, robot_rl, robot_rl.cli, robot_rl.sweep, robot_rl.training.remote\n"
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
