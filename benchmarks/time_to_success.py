"""Time to success: environment steps AND wall-clock minutes until a run's evaluation first reaches 80 % success,
and success (or return) at fixed step budgets, for the arm tasks, Meta-World and dm_control, several seeds, next to
TD-MPC2's published results where there are some. Every run goes through `robot_rl.train.train` (the same Config
as `robot-rl train`) into its own folder; the curve is that folder's eval.csv. Writes into `out`:
time_to_success.csv (one row per evaluation), time_to_success.png (mean curve and the seed spread, min to max,
per task), time_to_success.md (the table) and prints the table.

Groups (`groups=`), each a set of tasks x methods (x `actions=` for the arm tasks) x seeds:
  panda         panda-reach, panda-push, panda-pick (dense reward); TD-MPC2 without demos
  panda-sparse  panda-push-sparse, panda-pick-sparse; MoDem and MoDem-V2 with `demos=5` scripted demos, BC alone
                (the behaviour-cloned policy prior after phase 1, no interaction), TD-MPC2 without demos
  mw            mw:reach, mw:push, mw:pick-place (robot_rl/envs.py: TD-MPC2's Meta-World setting); TD-MPC2
  dmc           dmc:cartpole-swingup, dmc:reacher-easy; TD-MPC2
Published (TD-MPC2's results/tdmpc2/*.csv, mean of its 3 seeds at step 100k): mw-reach 0.63, mw-push 0.63,
mw-pick-place 0.10 success; cartpole-swingup 839, reacher-easy 937 return. TD-MPC2's `step` counts agent steps
(one per env.step of the action-repeat-2 wrapper: its online trainer adds 1 per call), which is what `steps` counts
here too, so the comparison is at steps=100000 (200k simulator steps), not 50k.

`runner=sweep` runs the grid through `robot-rl sweep` (robot_rl/sweep.py: Ray tasks, `jobs=` local CPUs or a
cluster at `address=`, finished runs skipped, killed ones resumed); `runner=local` (default) trains here.
`jobs=N` runs N at a time in worker processes (each with `threads=` torch threads); wall-clock then includes
their contention, so compare minutes only between runs made with the same jobs= on the same machine.
Wall-clock: seconds from the call to `train` (its imports and environment construction, MoDem's behaviour
cloning and every evaluation before the row included; tens of seconds of start-up on a loaded machine) until the
eval.csv row appeared, or the row's `wall_s` when train writes one. `threads=1` per run.

    # a tiny end-to-end check (minutes): one task per family, 1 seed, a few hundred steps, a tiny model
    python benchmarks/time_to_success.py tiny=true
    # the full grid (the issue's): 3 seeds, 30k steps on the arm tasks, 100k on mw/dmc, action=ee against joint
    python benchmarks/time_to_success.py seeds=3 actions=ee,joint panda_steps=30000 bench_steps=100000 \
        eval_every=2500 eval_episodes=10 preset=cpu runner=sweep jobs=2
    # one more seed of one cell (seeds 3..3), e.g. next to earlier runs
    python benchmarks/time_to_success.py groups=panda-sparse tasks=panda-push-sparse methods=modem-v2 \
        seeds=1 first_seed=3
    # report only, from earlier runs' CSVs
    python benchmarks/time_to_success.py from_csv=runs/tts/time_to_success.csv out=runs/tts

Budget of the full grid on this 2-core CPU, at 10-20 steps/s per run (README's training throughput for the small
CPU model; tiny=true ran at 5-9 steps/s here with 7 engineers sharing the cores): 54 interacting panda runs x 30k
steps + 15 mw/dmc runs x 100k steps = 3.1M steps, ~45-90 core-hours, so ~1-2 days with one run per core; preset=paper (TD-MPC2's 5M model, 512x6 planner, the setting of the published
numbers) wants a GPU. `actions=ee,joint` needs train's `action=` key (sim/action_mapping.py); without it only
`actions=default` (each task's default action space) runs.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

LEVEL = 0.8  # the success rate a run must reach
DEFAULTS = {"groups": "panda,panda-sparse,mw,dmc", "tasks": "", "methods": "", "seeds": "3", "first_seed": "1",
            "actions": "default",
            "panda_steps": "30000", "bench_steps": "100000", "eval_every": "2500", "eval_episodes": "10",
            "budgets": "5000,10000,30000,100000", "demos": "5", "preset": "cpu", "device": "cpu", "threads": "1",
            "out": "runs/time_to_success", "from_csv": "", "tiny": "false", "jobs": "1", "runner": "local",
            "address": ""}
# tiny=true: every family once, end to end, in minutes on a loaded CPU (a check that the pipeline works, not a result)
TINY = {"groups": "panda,panda-sparse,mw,dmc", "seeds": "1", "panda_steps": "300", "bench_steps": "200",
        "eval_every": "100", "eval_episodes": "2", "budgets": "100,200,300", "demos": "2",
        "tasks": "panda-reach,panda-push-sparse,mw:reach,dmc:cartpole-swingup"}
TINY_TRAIN = {"model_size": "1M", "enc_dim": "32", "mlp_dim": "32", "latent_dim": "16", "num_q": "2",
              "batch_size": "32", "seed_steps": "50", "planner.samples": "16", "planner.policy_samples": "2",
              "planner.elites": "4", "planner.iterations": "1", "modem.bc_steps": "20",
              "updates_per_step": "0.25"}


@dataclass(frozen=True)
class Reference:
    """A published result: `value` of `metric` at `step` agent steps."""
    metric: str
    value: float
    step: int
    source: str = "TD-MPC2 results/tdmpc2/<task>.csv, mean of 3 seeds"


@dataclass(frozen=True)
class Method:
    """A way to train: train keys on top of the shared ones, with or without demonstrations."""
    name: str
    uses_demos: bool
    keys: tuple[tuple[str, str], ...] = ()

    def train_keys(self, steps: int, demos: str) -> dict[str, str]:
        keys = dict(self.keys)
        if self.uses_demos:
            keys["demos"] = demos
        return keys


@dataclass(frozen=True)
class MoDemV2(Method):
    """MoDem-V2's switches on MoDem (as benchmarks/modem.py sets them): exploration centering, a pessimistic
    value, and the agency handover over the first half of the budget."""

    def train_keys(self, steps: int, demos: str) -> dict[str, str]:
        return {**super().train_keys(steps, demos), "modem.handover_steps": str(steps // 2)}


@dataclass(frozen=True)
class BehaviourCloning(Method):
    """BC alone: MoDem's phase 1 and nothing else; train with steps=0 evaluates the cloned policy prior."""

    def train_keys(self, steps: int, demos: str) -> dict[str, str]:
        return {**super().train_keys(steps, demos), "steps": "0", "planner.plan": "false"}


METHODS = {m.name: m for m in (
    Method("tdmpc2", uses_demos=False),
    Method("modem", uses_demos=True),
    MoDemV2("modem-v2", uses_demos=True, keys=(("planner.center_std", "0.2"), ("planner.value_std_coef", "1.0"))),
    BehaviourCloning("bc", uses_demos=True),
)}


@dataclass(frozen=True)
class Group:
    name: str
    tasks: dict[str, Reference | None]
    methods: tuple[str, ...]
    steps_key: str                 # which budget key sets its steps
    arm: bool = False              # the sim/ arm tasks: the `actions=` axis and scripted demos apply


GROUPS = {g.name: g for g in (
    Group("panda", {"panda-reach": None, "panda-push": None, "panda-pick": None}, ("tdmpc2",), "panda_steps", True),
    Group("panda-sparse", {"panda-push-sparse": None, "panda-pick-sparse": None},
          ("modem", "modem-v2", "bc", "tdmpc2"), "panda_steps", True),
    Group("mw", {"mw:reach": Reference("success", 0.63, 100_000), "mw:push": Reference("success", 0.63, 100_000),
                 "mw:pick-place": Reference("success", 0.10, 100_000)}, ("tdmpc2",), "bench_steps"),
    Group("dmc", {"dmc:cartpole-swingup": Reference("return", 839.0, 100_000),
                  "dmc:reacher-easy": Reference("return", 937.0, 100_000)}, ("tdmpc2",), "bench_steps"),
)}


@dataclass(frozen=True)
class Cell:
    group: str
    task: str
    method: str
    action: str
    seed: int
    steps: int

    @property
    def name(self) -> str:
        return f"{self.task.replace(':', '-')}-{self.method}-{self.action}-s{self.seed}"


def parse(argv: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Benchmark keys, and `train.<key>=value` pairs passed to every run."""
    args, train_keys = dict(DEFAULTS), {}
    pairs = dict(a.partition("=")[::2] for a in argv)
    if pairs.get("tiny", "false") == "true":
        args.update(TINY)
        train_keys.update(TINY_TRAIN)
    for key, value in pairs.items():
        if key.startswith("train."):
            train_keys[key[len("train."):]] = value
        elif key in args:
            args[key] = value
        else:
            raise SystemExit(f"time_to_success: unknown key {key!r}; keys: {sorted(args)} or train.<key>")
    return args, train_keys


def plan_cells(a: dict[str, str]) -> list[Cell]:
    names = [g for g in a["groups"].split(",") if g]
    unknown = [g for g in names if g not in GROUPS]
    if unknown:
        raise SystemExit(f"time_to_success: groups={unknown}: unknown; expected some of {sorted(GROUPS)}")
    only_tasks = set(filter(None, a["tasks"].split(",")))
    only_methods = set(filter(None, a["methods"].split(",")))
    if only_methods - set(METHODS):
        raise SystemExit(f"time_to_success: methods={sorted(only_methods - set(METHODS))}: unknown; "
                         f"expected some of {sorted(METHODS)}")
    if int(a["seeds"]) < 1 or int(a["first_seed"]) < 0:
        raise SystemExit(f"time_to_success: seeds={a['seeds']} first_seed={a['first_seed']}; expected >= 1 and >= 0")
    cells = []
    for group in (GROUPS[g] for g in names):
        for task in group.tasks:
            if only_tasks and task not in only_tasks:
                continue
            for method in group.methods:
                if only_methods and method not in only_methods:
                    continue
                for action in (a["actions"].split(",") if group.arm else ["default"]):
                    for seed in range(int(a["first_seed"]), int(a["first_seed"]) + int(a["seeds"])):
                        cells.append(Cell(group.name, task, method, action, seed, int(a[group.steps_key])))
    if not cells:
        raise SystemExit("time_to_success: the selection (groups=, tasks=, methods=) holds no run")
    return cells


def check_actions(cells: list[Cell]) -> None:
    """action=ee/joint runs need train's (and the demos') `action=` key; refuse before anything runs."""
    from robot_rl.demos import Config as DemosConfig
    from robot_rl.train import Config

    wanted = {c.action for c in cells} - {"default"}
    missing = [cls.__module__ for cls in (Config, DemosConfig) if "action" not in {f.name for f in
                                                                                   dataclasses.fields(cls)}]
    if wanted and missing:
        raise SystemExit(f"time_to_success: actions={sorted(wanted)} needs an `action=` key in {missing}; "
                         f"run actions=default until it exists")


def demos_for(cell: Cell, a: dict[str, str], out: Path) -> str:
    """The task's scripted demonstrations (robot_rl/demos.py), collected once per task and action space."""
    from robot_rl.demo_dataset import DemoError, save_demos
    from robot_rl.demos import Config as DemosConfig, collect

    folder = out / "demos" / f"{cell.task}-{cell.action}-{a['demos']}"
    if not folder.exists():
        extra = {} if cell.action == "default" else {"action": cell.action}
        meta, episodes = collect(DemosConfig(task=cell.task, episodes=int(a["demos"]), seed=12345, progress=False,
                                             **extra))
        try:
            save_demos(folder, meta, episodes)
        except DemoError:
            if not folder.exists():
                raise
    return str(folder)


def read_eval(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


class EvalWatch:
    """Notes when each eval.csv row of a running run first appears (its wall-clock time), polling the file.
    The clock starts now, or when `start_file` first exists (a sweep run starts when Ray schedules it)."""

    def __init__(self, path: Path, period_s: float = 0.5, start_file: Path | None = None):
        self.path, self.period_s, self.seen, self.start_file = path, period_s, [], start_file
        self.start = None if start_file else time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        if self.start is None:
            if not self.start_file.exists():
                return
            self.start = time.perf_counter()
        rows = read_eval(self.path)
        now = time.perf_counter() - self.start
        self.seen += [now] * (len(rows) - len(self.seen))

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._poll()

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join()
        self._poll()
        return self.seen


def cell_keys(cell: Cell, a: dict[str, str], train_keys: dict[str, str], out: Path) -> dict[str, str]:
    """The train keys of a cell (all but task, seed and out), as `robot-rl train` takes them."""
    method = METHODS[cell.method]
    keys = {"steps": str(cell.steps), "preset": a["preset"], "device": a["device"], "threads": a["threads"],
            "eval_every": a["eval_every"], "eval_episodes": a["eval_episodes"], "checkpoint_every": "0",
            "progress": "false", "tensorboard": "false", **train_keys,
            **method.train_keys(cell.steps, demos_for(cell, a, out) if method.uses_demos else "")}
    if cell.action != "default":
        keys["action"] = cell.action
    return keys


def preset_layer(pairs: dict[str, str]) -> dict:
    """The device-dependent preset under every other key, as the CLI puts it."""
    import robot_rl.train as train_module

    return train_module.default_layer(pairs) if hasattr(train_module, "default_layer") else {}


def finished_rows(folder: Path) -> list[dict] | None:
    """A cell's rows when it finished in an earlier start of the benchmark (then it is skipped)."""
    done = folder / "time_to_success.csv"
    if not done.exists():
        return None
    with done.open(newline="") as f:
        return list(csv.DictReader(f))


def cell_rows(cell: Cell, folder: Path, seen: list[float]) -> list[dict]:
    """A finished run's evaluations as rows, with the wall-clock the watch saw (or train's own wall_s)."""
    rows = []
    for k, row in enumerate(read_eval(folder / "eval.csv")):
        wall = float(row["wall_s"]) if row.get("wall_s") else (seen[k] if k < len(seen) else float("nan"))
        rows.append({"group": cell.group, "task": cell.task, "method": cell.method, "action": cell.action,
                     "seed": cell.seed, "step": int(float(row["step"])), "wall_s": round(wall, 2),
                     "success": float(row["success"]), "return": float(row["return"])})
    write_csv(folder / "time_to_success.csv", rows)
    return rows


def run_cell(cell: Cell, a: dict[str, str], train_keys: dict[str, str], out: Path) -> list[dict]:
    """Train one cell in this process (or reuse its finished folder); its evaluations as rows."""
    import robot_rl.train as train_module
    from robot_rl.overrides import build

    folder = out / "runs" / cell.name
    rows = finished_rows(folder)
    if rows is not None:
        return rows
    pairs = {"task": cell.task, "seed": str(cell.seed), "out": str(folder), **cell_keys(cell, a, train_keys, out)}
    config = build(train_module.Config, preset_layer(pairs), pairs)
    if folder.exists():  # an unfinished run from before: start it again from scratch
        import shutil

        shutil.rmtree(folder)
    watch = EvalWatch(folder / "eval.csv")
    result = train_module.train(config)
    seen = watch.stop()
    if result is None:
        raise SystemExit(f"time_to_success: {cell.name}: train refused its configuration (see above)")
    return cell_rows(cell, folder, seen)


def run_sweep(cells: list[Cell], a: dict[str, str], train_keys: dict[str, str], out: Path) -> list[dict]:
    """Every cell as a run of `robot-rl sweep` (robot_rl/sweep.py: Ray tasks, done.json markers, resume), on a
    local Ray with `jobs` CPUs or the cluster at `address`. Wall-clock per evaluation needs the run folders on
    this machine (a local Ray); elsewhere it is NaN."""
    from robot_rl import sweep
    from robot_rl.sweep_config import Resources

    runs = {}
    for cell in cells:
        keys = cell_keys(cell, a, train_keys, out)
        layers = {"preset": preset_layer({"task": cell.task, **keys}), "time_to_success": keys}
        runs[cell] = sweep.make_run(cell.task, cell.method, cell.seed, layers, out / "sweep",
                                    labels={"action": cell.action}, resources=Resources(cpus=float(a["threads"])))
    todo = {c: r for c, r in runs.items() if finished_rows(r.folder) is None}
    watches = {c: EvalWatch(r.folder / "eval.csv", start_file=r.folder / "log.txt") for c, r in todo.items()}
    sweep.execute(list(runs.values()), address=a["address"], local_cpus=int(a["jobs"]))
    rows = []
    for cell, run in runs.items():
        rows += cell_rows(cell, run.folder, watches[cell].stop()) if cell in watches else finished_rows(run.folder)
    return rows


def run_cell_logged(cell: Cell, a: dict[str, str], train_keys: dict[str, str], out: Path) -> list[dict]:
    """run_cell in a worker process, its output in runs/<run>.log (runs side by side would interleave)."""
    import contextlib

    log = out / "runs" / f"{cell.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        return run_cell(cell, a, train_keys, out)


def write_csv(path: Path, rows: list[dict]) -> None:
    """Atomically (temp file + rename)."""
    buf = io.StringIO()
    fields = ["group", "task", "method", "action", "seed", "step", "wall_s", "success", "return"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)


# ---- analysis ----
Key = tuple[str, str, str, str]  # group, task, method, action


def by_run(rows: list[dict]) -> dict[Key, dict[int, list[dict]]]:
    runs: dict[Key, dict[int, list[dict]]] = {}
    for r in rows:
        key = (r["group"], r["task"], r["method"], r["action"])
        runs.setdefault(key, {}).setdefault(int(r["seed"]), []).append(r)
    for seeds in runs.values():
        for curve in seeds.values():
            curve.sort(key=lambda r: int(r["step"]))
    return runs


def first_reaching(curve: list[dict], level: float = LEVEL) -> dict | None:
    return next((r for r in curve if float(r["success"]) >= level), None)


def at_budget(curve: list[dict], budget: int, metric: str) -> float | None:
    """The last evaluation at or before `budget` steps, if the run got that far (a run without interaction,
    BC alone, holds its one evaluation at every budget)."""
    if 0 < int(curve[-1]["step"]) < budget:
        return None
    before = [r for r in curve if int(r["step"]) <= budget]
    return float(before[-1][metric]) if before else None


def mean_spread(values: list[float], fmt: str = ".3g") -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    return f"{mean:{fmt}}" if len(values) == 1 else f"{mean:{fmt}} [{min(values):{fmt}}, {max(values):{fmt}}]"


def metric_of(group: str, task: str) -> str:
    ref = GROUPS[group].tasks.get(task) if group in GROUPS else None
    return ref.metric if ref else "success"


def budget_label(steps: int) -> str:
    """30000 -> 30k, 1280 -> 1280 (a truncated 1k would name two budgets alike)."""
    return f"{steps // 1000}k" if steps >= 1000 and steps % 1000 == 0 else str(steps)


def table(rows: list[dict], budgets: list[int]) -> str:
    head = ["task", "method", "action", "seeds", f"steps to {LEVEL:.0%}", f"minutes to {LEVEL:.0%}",
            *[f"at {budget_label(b)}" for b in budgets], "published"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (group, task, method, action), seeds in sorted(by_run(rows).items()):
        metric = metric_of(group, task)
        reached = [first_reaching(c) for c in seeds.values()]
        hit = [r for r in reached if r is not None]
        n = len(seeds)
        steps = mean_spread([float(r["step"]) for r in hit], ".0f") + ("" if len(hit) == n else f" ({len(hit)}/{n} reached)")
        minutes = mean_spread([float(r["wall_s"]) / 60 for r in hit], ".1f") if hit else "-"
        if metric != "success":  # a return task (dm_control): no success rate to reach
            steps = minutes = "n/a"
        cols = []
        for b in budgets:
            vals = [v for v in (at_budget(c, b, metric) for c in seeds.values()) if v is not None]
            cols.append(mean_spread(vals) + (f" ({metric})" if vals and metric != "success" else ""))
        ref = GROUPS[group].tasks.get(task) if group in GROUPS else None
        published = f"{ref.value:g} {ref.metric} at {ref.step // 1000}k" if ref else "-"
        lines.append("| " + " | ".join([task, method, action, str(n), steps, minutes, *cols, published]) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runs = by_run(rows)
    tasks = sorted({(g, t) for g, t, _, _ in runs})
    cols = min(3, len(tasks))
    fig, axes = plt.subplots(math.ceil(len(tasks) / cols), cols, figsize=(5 * cols, 3.6 * math.ceil(len(tasks) / cols)),
                             squeeze=False)
    for ax, (group, task) in zip(axes.flat, tasks):
        metric = metric_of(group, task)
        last_step = max([1] + [int(r["step"]) for (g, t, _, _), seeds in runs.items() if (g, t) == (group, task)
                               for c in seeds.values() for r in c])
        for (g, t, method, action), seeds in sorted(runs.items()):
            if (g, t) != (group, task):
                continue
            steps = sorted({int(r["step"]) for c in seeds.values() for r in c})
            label = f"{method}" + ("" if action == "default" else f" ({action})")
            if steps == [0]:  # no interaction (BC alone): its level holds at every step
                mean = float(np.mean([float(c[-1][metric]) for c in seeds.values()]))
                ax.plot([0, last_step], [mean, mean], linestyle="--", label=f"{label}, no interaction")
                continue
            values = np.array([[np.interp(s, [int(r["step"]) for r in c], [float(r[metric]) for r in c])
                                for s in steps] for c in seeds.values()])
            line, = ax.plot(steps, values.mean(0), label=label, marker="." if len(steps) < 3 else None)
            if len(seeds) > 1:
                ax.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
        ref = GROUPS[group].tasks.get(task) if group in GROUPS else None
        if ref:
            ax.scatter([ref.step], [ref.value], marker="*", color="k", zorder=5, label="TD-MPC2 published")
        if metric == "success":
            ax.axhline(LEVEL, color="grey", linewidth=0.8, linestyle=":")
            ax.set_ylim(-0.03, 1.03)
        ax.set_title(task)
        ax.set_xlabel("environment (agent) steps")
        ax.set_ylabel(metric)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    fig.suptitle("time to success: mean over seeds, band = min..max")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def report(rows: list[dict], a: dict[str, str], out: Path, command: str) -> None:
    budgets = [int(b) for b in a["budgets"].split(",") if b]
    write_csv(out / "time_to_success.csv", rows)
    plot(rows, out / "time_to_success.png")
    text = table(rows, budgets)
    md = (f"# Time to success\n\n`{command}`\n\nSteps are agent steps (TD-MPC2's `step`); minutes are wall-clock "
          f"from each run's start. Cells: mean [min, max] over seeds; budgets show success (or the task's "
          f"return) at the last evaluation at or before that step.\n\n{text}\n")
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".time_to_success.md.")
    with os.fdopen(fd, "w") as f:
        f.write(md)
    os.replace(tmp, out / "time_to_success.md")
    print(text)


def main(argv: list[str]) -> None:
    a, train_keys = parse(argv)
    out = Path(a["out"])
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/time_to_success.py " + " ".join(argv)
    if a["from_csv"]:
        rows = []
        for p in a["from_csv"].split(","):
            with open(p, newline="") as f:
                rows += list(csv.DictReader(f))
        report(rows, a, out, command)
        return
    import torch

    torch.set_num_threads(int(a["threads"]))
    cells = plan_cells(a)
    check_actions(cells)
    for cell in cells:  # demos first, here: runs side by side would race to write them
        if METHODS[cell.method].uses_demos:
            demos_for(cell, a, out)
    rows: list[dict] = []
    if a["runner"] == "sweep":
        report(run_sweep(cells, a, train_keys, out), a, out, command)
        return
    if a["runner"] != "local":
        raise SystemExit(f"time_to_success: runner={a['runner']!r}; expected local or sweep")
    jobs = int(a["jobs"])
    if jobs <= 1:
        for i, cell in enumerate(cells, 1):
            t0 = time.perf_counter()
            print(f"[{i}/{len(cells)}] {cell.name}: budget {cell.steps} steps", flush=True)
            rows += run_cell(cell, a, train_keys, out)
            print(f"[{i}/{len(cells)}] {cell.name}: done in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
            report(rows, a, out, command)  # the table so far, after every run
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    print(f"{len(cells)} runs, {jobs} at a time; each run's output in {out / 'runs'}/<run>.log", flush=True)
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(run_cell_logged, cell, a, train_keys, out): cell for cell in cells}
        for i, future in enumerate(as_completed(futures), 1):
            rows += future.result()
            print(f"[{i}/{len(cells)}] {futures[future].name}: done", flush=True)
            report(rows, a, out, command)


if __name__ == "__main__":
    main(sys.argv[1:])
