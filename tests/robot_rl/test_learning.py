"""Learning must not break: TD-MPC2 with the CPU preset learns panda-reach (dense reward) to >= 80% success
(20 evaluation episodes, success = goal reached at the episode's last step) in 3500 environment steps.
About 3 minutes on one free core (4 when the machine is shared)."""
from pathlib import Path

import pytest

from robot_rl.overrides import build, load_yaml
from robot_rl.train import Config, train

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_panda_reach_learns_to_80_percent_success(tmp_path):
    preset = load_yaml(ROOT / "robot_rl/presets/cpu_small.yaml")
    config = build(Config, preset, {"task": "panda-reach", "steps": 3500, "seed": 1, "out": str(tmp_path),
                                    "eval_every": 0, "eval_episodes": 20, "checkpoint_every": 0,
                                    "threads": 1, "progress": False, "tensorboard": False})
    result = train(config)
    assert result is not None
    assert result["success"] >= 0.8, result
