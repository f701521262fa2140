"""`robot-rl sweep`: a grid of training runs (tasks x methods x seeds), each a Ray task with its own run folder.

    robot-rl sweep tasks=panda-reach,panda-push seeds=1,2,3 train.steps=3000 train.eval_every=500
    robot-rl sweep spec=sweep.yaml                       # the same keys in a YAML file (command-line pairs win)
    robot-rl sweep spec=sweep.yaml address=auto          # on a running Ray cluster (`ray start --head`, workers)

Runs go to a local Ray started for the sweep (nothing to set up) or to a cluster (`address=auto|host:port|ray://...`;
each node needs this package installed). Each run holds `resources.cpus` CPUs and `resources.gpus` of a GPU, so Ray
runs as many at once as the machines hold. Every run trains through `robot_rl.train.train` with `resume=true` into
`out/runs/<task>-<method>-s<seed>/` and writes `done.json` there (atomically) last: starting the same sweep again
skips finished runs and resumes killed ones from their checkpoints (`train.checkpoint_every`). The spec is checked
whole (keys, tasks, seeds, methods, demos) before any run starts. Results: `out/sweep.csv` (one row per
evaluation), `out/sweep.png` (mean and seed spread per task and method), `out/sweep.md` (final results table).
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot_rl.overrides import build, flatten, to_dict
from robot_rl.sweep_config import METHODS, Config, Resources
from robot_rl.train import Config as TrainConfig, check_config
from robot_rl.train import default_layer as train_default_layer

CONFIG_FILE_KEY = "spec"  # `robot-rl sweep spec=FILE.yaml` loads the keys of Config from a YAML file
DONE = "done.json"


class SweepError(ValueError):
    """A sweep that cannot start (unknown task or method, empty grid, missing demos) or runs that failed."""


@dataclass(frozen=True)
class Run:
    """One training run of a sweep, as plain data (it travels to a Ray worker)."""
    name: str
    task: str
    method: str
    seed: int
    train: dict[str, Any]                                  # its full robot_rl.train.Config, as to_dict writes it
    labels: dict[str, str] = field(default_factory=dict)   # further grid axes (e.g. obs), columns of the results
    resources: Resources = field(default_factory=Resources)  # what the run holds while it trains
    cwd: str = field(default_factory=os.getcwd)           # relative paths in `train` are relative to this folder

    @property
    def folder(self) -> Path:
        return Path(self.cwd) / self.train["out"]


def make_run(task: str, method: str, seed: int, layers: dict[str, dict[str, Any]], out: str | Path,
             labels: dict[str, str] | None = None, resources: Resources | None = None) -> Run:
    """A run whose train config is `layers` (source name -> keys, later ones win) plus its task, seed and folder.
    Raises SweepError naming the run and the key when the config does not build."""
    labels = dict(labels or {})
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", "-".join([task, method, *labels.values(), f"s{seed}"]))
    own = {"task": task, "seed": seed, "out": str(Path(out) / "runs" / name), "resume": True, "progress": False}
    try:
        cfg = build(TrainConfig, *layers.values(), own, sources=(*layers, f"run {name}"))
        check_config(cfg)
    except ValueError as err:
        raise SweepError(f"run {name}: {err}") from None
    return Run(name, task, method, seed, to_dict(cfg), labels, resources or Resources())


def check_grid(runs: list[Run]) -> None:
    """Refuse an empty grid, two runs sharing a folder and unknown tasks, before anything runs."""
    if not runs:
        raise SweepError("the sweep has no runs")
    names = [r.name for r in runs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SweepError(f"runs {twice} appear more than once (repeated task, method or seed)")
    from robot_rl.envs import task_error

    errors = [e for e in dict.fromkeys(task_error(r.task) for r in runs) if e]
    if errors:
        raise SweepError("; ".join(errors))


def default_layer(pairs: dict[str, Any]) -> dict[str, Any]:
    """The runs' train preset, as `robot-rl train` picks it (`train.preset=auto|cpu|paper`), under every other key;
    `robot_rl/cli.py` layers it under the spec file and the command line. Runs holding no GPU count as CPU runs."""
    flat = flatten(pairs)
    keys = {k[len("train."):]: str(v) for k, v in flat.items() if k.startswith("train.")}
    try:
        gpus = float(flat.get("resources.gpus", Resources.gpus))
    except ValueError:
        gpus = 0.0  # build() refuses the value next, naming the key
    if gpus == 0:
        keys.setdefault("device", "cpu")
    return {"train": train_default_layer(keys)}


def plan(config: Config) -> list[Run]:
    """The runs of a `robot-rl sweep` config, every one checked."""
    for key, example in (("tasks", "panda-reach,panda-push"), ("seeds", "1,2,3"), ("methods", "tdmpc2,modem")):
        if not getattr(config, key):
            raise SweepError(f"{key}: empty; expected a comma-separated list, e.g. {key}={example}")
    unknown = [m for m in config.methods if m not in METHODS]
    if unknown:
        raise SweepError(f"methods: unknown {unknown}; expected names from {sorted(METHODS)}")
    if config.resources.cpus <= 0 or config.resources.gpus < 0:
        raise SweepError(f"resources.cpus={config.resources.cpus}, resources.gpus={config.resources.gpus}: "
                         "expected cpus > 0 and gpus >= 0")
    base = to_dict(config.train)
    if base["threads"] == 0:  # one torch thread per CPU the run holds, not one per core of the node
        base["threads"] = max(1, int(config.resources.cpus))
    if config.resources.gpus == 0 and base["device"] == "auto":
        base["device"] = "cpu"
    runs = []
    for task in config.tasks:
        for method in config.methods:
            keys = {k: v.replace("{demos}", config.demos.replace("{task}", task)) for k, v in METHODS[method].items()}
            if any("{demos}" in v for v in METHODS[method].values()):
                if not config.demos:
                    raise SweepError(f"methods: {method!r} trains from demonstrations; set demos=<folder> "
                                     "(`{task}` in it is replaced by each task)")
                if not Path(keys["demos"]).is_dir():
                    raise SweepError(f"demos={config.demos!r}: {keys['demos']} is not a folder (task {task})")
            for seed in config.seeds:
                runs.append(make_run(task, method, seed, {"train.*": base, f"method {method}": keys}, config.out,
                                     resources=config.resources))
    check_grid(runs)
    return runs


def finished(run: Run) -> dict | None:
    """The run's done.json when it finished with this very config, else None."""
    try:
        marker = json.loads((run.folder / DONE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return marker if marker.get("train") == run.train else None


def train_run(run: Run) -> dict:
    """One run, inside a Ray worker: train (resuming from the folder's checkpoint), then write done.json last."""
    from robot_rl.train import train

    os.chdir(run.cwd)  # a Ray worker starts elsewhere; the run's paths are the driver's
    run.folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with (run.folder / "log.txt").open("a", buffering=1) as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        result = train(build(TrainConfig, run.train, sources=(f"run {run.name}",)))
    if result is None:
        raise SweepError(f"run {run.name}: training refused to start; see {run.folder / 'log.txt'}")
    marker = {"name": run.name, "task": run.task, "method": run.method, "seed": run.seed, "labels": run.labels,
              "result": result, "train_s": round(time.perf_counter() - started, 3), "cwd": run.cwd,
              "train": run.train}
    write_atomic(run.folder / DONE, json.dumps(marker, indent=1))
    return marker


def connect(address: str = "", local_cpus: int = 0) -> bool:
    """Join Ray: a session already open in this process, a cluster at `address`, or a new local one.
    True when this call started it (and so should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        try:
            ray.init(address=address)
        except ConnectionError as err:
            raise SweepError(f"address={address!r}: {err} (is `ray start --head` running there?)") from None
        return True
    start = dict(address="local", num_cpus=local_cpus or None, include_dashboard=False)  # never a running cluster
    try:
        ray.init(**start)
    except Exception as err:  # Ray raises a bare Exception when the raylet misses its fixed 30 s to register
        if "timed out during startup" not in str(err):
            raise
        print(f"sweep: the local Ray did not start in time on this loaded machine ({err}); trying once more")
        ray.shutdown()
        ray.init(**start)
    return True


def execute(runs: list[Run], address: str = "", local_cpus: int = 0, progress: bool = True) -> list[dict]:
    """Run every unfinished run as a Ray task; the done.json of every run, in the order of `runs`.
    Raises SweepError naming the runs that failed, after the others have finished."""
    import ray
    from tqdm import tqdm

    markers = {r.name: finished(r) for r in runs}
    todo = [r for r in runs if markers[r.name] is None]
    failures = []
    if todo:
        started = connect(address, local_cpus)
        try:
            task = ray.remote(train_run)
            pending = {task.options(name=r.name, num_cpus=r.resources.cpus, num_gpus=r.resources.gpus,
                                    max_retries=2).remote(r): r for r in todo}
            with tqdm(total=len(runs), initial=len(runs) - len(todo), desc="sweep", unit="run",
                      disable=not progress, dynamic_ncols=True) as bar:
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1)
                    run = pending.pop(done[0])
                    try:
                        markers[run.name] = ray.get(done[0])
                    except ray.exceptions.RayError as err:
                        cause = getattr(err, "cause", None) or err  # a task's own exception, without Ray's frame
                        failures.append(f"{run.name}: {type(cause).__name__}: {cause} (log: {run.folder / 'log.txt'})")
                    bar.update(1)
        finally:
            if started:
                ray.shutdown()
    if failures:
        raise SweepError(f"{len(failures)} of {len(runs)} runs failed:\n" + "\n".join(failures))
    return [markers[r.name] for r in runs]


def results(markers: list[dict]) -> list[dict]:
    """One row per evaluation of every run (its eval.csv), with the run's task, method, labels and seed."""
    rows = []
    for m in markers:
        with (Path(m["cwd"]) / m["train"]["out"] / "eval.csv").open(newline="") as f:
            for r in csv.DictReader(f):
                rows.append({"task": m["task"], "method": m["method"], **m["labels"], "seed": m["seed"],
                             "step": int(float(r["step"])), "return": float(r["return"]),
                             "success": float(r["success"]), "train_s": m["train_s"]})
    return rows


def groups(rows: list[dict]) -> dict[tuple[str, ...], list[dict]]:
    """Rows by (task, method, labels...): what the plot draws as one curve and the table as one line."""
    fixed = {"task", "method", "seed", "step", "return", "success", "train_s"}
    out: dict[tuple[str, ...], list[dict]] = {}
    for r in rows:
        key = (r["task"], r["method"], *(str(v) for k, v in r.items() if k not in fixed))
        out.setdefault(key, []).append(r)
    return out


def curve(rows: list[dict], metric: str):
    """Steps, mean, min and max across seeds of `metric` (seed spread)."""
    import numpy as np

    steps = sorted({r["step"] for r in rows})
    values = [[r[metric] for r in rows if r["step"] == s] for s in steps]
    return (np.array(steps), np.array([np.mean(v) for v in values]), np.array([min(v) for v in values]),
            np.array([max(v) for v in values]))


def plot(rows: list[dict], path: Path, metric: str = "success") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_group = groups(rows)
    tasks = list(dict.fromkeys(k[0] for k in by_group))
    metrics = list(dict.fromkeys([metric, "return"]))
    fig, axes = plt.subplots(len(metrics), len(tasks), figsize=(4.5 * len(tasks), 3.2 * len(metrics)), squeeze=False)
    for j, task in enumerate(tasks):
        for i, key in enumerate(metrics):
            ax = axes[i][j]
            for group, group_rows in by_group.items():
                if group[0] != task:
                    continue
                steps, mean, low, high = curve(group_rows, key)
                seeds = len({r["seed"] for r in group_rows})
                line, = ax.plot(steps, mean, marker=".", label=f"{' '.join(group[1:])} ({seeds} seeds)")
                ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
                ax.vlines(steps, low, high, color=line.get_color(), alpha=0.6)  # the spread of a lone evaluation too
            ax.set(title=f"{task}: {key}", xlabel="environment steps")
            if key == "success":
                ax.set_ylim(-0.05, 1.05)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("mean over seeds; band and bars: min to max across seeds", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def table(rows: list[dict], metric: str = "success") -> str:
    """Markdown: per task and method, the final evaluation's mean +- std over seeds, and train minutes."""
    import numpy as np

    lines = [f"| task | method | seeds | final {metric} | best mean {metric} | final return | train min/run |",
             "|---|---|---|---|---|---|---|"]
    for group, group_rows in groups(rows).items():
        seeds = sorted({r["seed"] for r in group_rows})
        last = [max((r for r in group_rows if r["seed"] == s), key=lambda r: r["step"]) for s in seeds]
        final = np.array([r[metric] for r in last])
        ret = np.array([r["return"] for r in last])
        best = curve(group_rows, metric)[1].max()
        minutes = np.mean([r["train_s"] for r in last]) / 60
        lines.append(f"| {group[0]} | {' '.join(group[1:])} | {len(seeds)} | {final.mean():.2f} ± {final.std():.2f} | "
                     f"{best:.2f} | {ret.mean():.2f} ± {ret.std():.2f} | {minutes:.1f} |")
    return "\n".join(lines) + "\n"


def aggregate(markers: list[dict], out: str | Path, metric: str = "success") -> list[dict]:
    """Write out/sweep.csv, out/sweep.png and out/sweep.md from finished runs; the CSV's rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = results(markers)
    if not rows:
        raise SweepError(f"{out}: the finished runs have no evaluations (eval.csv) to aggregate")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / "sweep.csv", text.getvalue().encode())
    plot(rows, out / "sweep.png", metric)
    write_atomic(out / "sweep.md", table(rows, metric).encode())
    return rows


def write_atomic(path: Path, data: bytes | str) -> None:
    """Temp file in the same folder, fsync, rename (robot_rl.checkpoint has one too, but imports torch)."""
    data = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def run(config: Config) -> int:
    runs = plan(config)
    done = sum(finished(r) is not None for r in runs)
    print(f"sweep: {len(runs)} runs ({done} already finished) -> {config.out}")
    markers = execute(runs, config.address, config.local_cpus, progress=config.progress)
    aggregate(markers, config.out, config.metric)
    print(table(results(markers), config.metric))
    print(f"wrote {Path(config.out) / 'sweep.csv'}, sweep.png, sweep.md")
    return 0
