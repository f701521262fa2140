"""Keys of `robot-rl sweep`: the grid (tasks x methods x seeds), where it runs (a local Ray or a cluster), what each
run holds (CPUs, GPU fraction), and the `train.*` keys every run shares (those of `robot-rl train`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from robot_rl.train import Config as TrainConfig


@dataclass
class Resources:
    cpus: float = 1.0                 # CPUs each run holds; Ray starts a run when that many are free
    gpus: float = 0.0                 # GPU share each run holds (0.25: four runs on one GPU); 0: runs see no GPU


@dataclass
class Config:
    tasks: list[str] = field(default_factory=list)      # task strings of `robot-rl train task=...`
    seeds: list[int] = field(default_factory=list)
    methods: list[str] = field(default_factory=lambda: ["tdmpc2"])  # names in METHODS
    demos: str = ""                   # demonstrations for methods that use them; `{task}` is replaced by the task
    out: str = "runs/sweep"           # runs/<run>/ per run, plus sweep.csv, sweep.png, sweep.md
    address: str = ""                 # "": a local Ray started for the sweep; auto | host:port | ray://host:port
    local_cpus: int = 0               # CPUs of the local Ray (0: all of this machine's)
    resources: Resources = field(default_factory=Resources)
    metric: Literal["success", "return"] = "success"  # what the plot and the table report first
    progress: bool = True             # a bar over runs (each run's own output goes to runs/<run>/log.txt)
    train: TrainConfig = field(default_factory=TrainConfig)  # train.steps=3000 train.planner.samples=128 ...


# A method is a name and the train keys it sets on top of `train.*`; "{demos}" is the sweep's `demos` key.
METHODS: dict[str, dict[str, str]] = {
    "tdmpc2": {"demos": ""},          # TD-MPC2 from scratch
    "modem": {"demos": "{demos}"},    # MoDem: behaviour cloning, demo seeding, then interaction with demo oversampling
}
