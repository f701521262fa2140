"""The sim-to-real gap over generated arms: identify each arm, fine-tune or retrain in its identified simulator,
and measure how much of the nominal policy's gap that closes on the arm itself and on the same arm in PyBullet.

For every hidden arm (calibration.hidden_arms.draw(seed): each joint its own damping, armature, friction loss
and kp factor; one payload, action latency of 1-2 control steps and joint noise; the issue's ranges):

1. Identify it as the README's sysid how-to does, on the run_on=sim path (the simulated arm plays the hidden
   file; a real MCAP bag in between): `robot-rl sysid excite` (active design) -> recording, a second random
   excitation as held-out data, `robot-rl sysid fit recording=... holdout=...` -> identified robot_params.yaml
   with 95 % intervals. A fit that fails its held-out check (exit 3) is written with force=true and flagged.
2. Train, one run at a time through robot_rl.sweep (a local Ray with --cpus CPUs, 1: sequential):
   - nominal: from scratch in the description's simulator (`--steps`), one per seed, shared by all arms;
   - continued (buffer kept): the nominal run carried on in the identified simulator for `--finetune-steps`
     more steps (a copy of its folder, `resume=true params=<identified>`: its agent, optimisers and replay
     buffer), `+ randomisation`: with `randomize=true` (the identified intervals as randomisation ranges);
   - fine-tuned (init=): `init=<nominal agent.pt> params=<identified>` (`--finetune-steps`; the agent and, since
     init_buffer=true, its replay buffer; the issue's command), `+ randomisation` likewise;
   - ceilings: the same two procedures in the arm's own simulator (`params=<hidden file>`): the best each can
     do with perfect identification;
   - retrained: from scratch in the identified simulator for `--retrain-seeds`, as many steps as the nominal
     agent and its continuation together (`--retrain-steps`): adapting and retraining at equal environment steps.
   The fine-tuning budgets are smaller than the from-scratch ones. Stages run in the order `--stages` names
   them, seed by seed and arm by arm, each run evaluated as soon as it has trained, so a benchmark stopped early
   leaves complete, paired cells. Every run pins its training settings (preset, envs, updates_per_step,
   seed_steps, action_history, threads), so the numbers do not move when the CPU preset changes.
3. Evaluate every policy on the hidden arm (MuJoCo with the hidden file) and on the PyBullet arm (the same hidden
   file played by PyBullet: another engine on top of the parameter gap), `--episodes` planner episodes each with
   the same episode seeds for every policy on an arm (paired comparison).

Gap closed = (after - nominal) / (ceiling - nominal), from the means over arms x seeds. Evaluations are cached
in `evaluations.csv`, so a rerun (or `--report-only`) only adds what is missing; results go to `--out`
(identification.csv, evaluations.csv, sim2real.md).

    nice -n 10 .venv/bin/python benchmarks/sim2real.py --arms 0,1,2 --seeds 1,2,3 --steps 3200 --finetune-steps 400
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")

EVAL_FIELDS = ["condition", "arm", "seed", "target", "success", "return", "train_steps", "train_s"]
TARGETS = {"hidden arm": {}, "pybullet arm": {"backend": "pybullet"}}
DESCRIPTION = "description's simulator"   # where the nominal agent was trained (stage nominal-sim)


@dataclass(frozen=True)
class Arm:
    seed: int
    hidden: Path          # the hidden parameters file (the "real" arm; the fit never sees it)
    identified: Path      # what sysid fit wrote from the arm's recording


@dataclass(frozen=True)
class Condition:
    """One way of getting a policy for an arm: its train keys, budget and what it starts from."""
    name: str
    keys: Callable[[Arm | None, "Budget", Path], dict]   # (arm, budget, nominal agent.pt) -> train keys
    per_arm: bool = True
    continues: bool = False    # starts from a copy of the nominal run's checkpoint and replay buffer (resume=true)


@dataclass(frozen=True)
class Budget:
    steps: int              # from scratch (the nominal agent)
    retrain_steps: int      # from scratch in the identified simulator: the nominal's + the fine-tuning's steps
    finetune_steps: int     # fine-tuning (and the retrained agent kept at this step for the equal-steps check)
    finetune_seed_steps: int


def finetune(params: Callable[[Arm], Path], randomize: bool = False):
    def keys(arm: Arm, budget: Budget, nominal: Path) -> dict:
        return {"init": str(nominal), "params": str(params(arm)), "randomize": randomize,
                "steps": budget.finetune_steps, "seed_steps": budget.finetune_seed_steps}
    return keys


def continued(params: Callable[[Arm], Path], randomize: bool = False):
    def keys(arm: Arm, budget: Budget, nominal: Path) -> dict:
        return {"params": str(params(arm)), "randomize": randomize, "steps": budget.steps + budget.finetune_steps}
    return keys


NOMINAL = Condition("nominal", lambda arm, b, nominal: {"steps": b.steps}, per_arm=False)
# `init=` fine-tuning: the nominal agent (model, optimisers, value scale) and its replay buffer (init_buffer).
FINETUNES = [Condition("fine-tuned (init=)", finetune(lambda a: a.identified)),
             Condition("ceiling: fine-tuned (init=) in the arm's own simulator", finetune(lambda a: a.hidden)),
             Condition("fine-tuned (init=) + randomisation", finetune(lambda a: a.identified, randomize=True))]
# The nominal run continued in the new simulator with its replay buffer (a copy of its folder, resume=true).
CONTINUED = [Condition("continued (buffer kept)", continued(lambda a: a.identified), continues=True),
             Condition("ceiling: continued in the arm's own simulator", continued(lambda a: a.hidden), continues=True),
             Condition("continued (buffer kept) + randomisation", continued(lambda a: a.identified, randomize=True),
                       continues=True)]
RETRAINED = Condition("retrained", lambda arm, b, nominal: {"params": str(arm.identified), "steps": b.retrain_steps})
FAMILIES = {FINETUNES[1].name: [FINETUNES[0].name, FINETUNES[2].name],   # ceiling -> the conditions it bounds
            CONTINUED[1].name: [CONTINUED[0].name, CONTINUED[2].name, RETRAINED.name]}
ORDER = [NOMINAL.name, *(c.name for c in FINETUNES), *(c.name for c in CONTINUED), RETRAINED.name]
# Names the first results were written under (init= was the only fine-tuning then).
RENAMED = {"fine-tuned": FINETUNES[0].name, "fine-tuned + randomisation": FINETUNES[2].name,
           "ceiling (fine-tuned in the arm's own simulator)": FINETUNES[1].name}


def run_cli(args: list[str], log: Path) -> int:
    """A robot-rl command in this process, its output appended to `log`."""
    import contextlib

    from robot_rl.cli import main as cli

    with log.open("a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        print("$ robot-rl " + " ".join(args), flush=True)
        return cli(args)


def identify(seed: int, out: Path, args) -> tuple[Arm, dict]:
    """Draw the hidden arm, record it, fit it; the arm's files and a row of what the fit found."""
    from calibration import hidden_arms
    from sim.params import load_params
    from sim.robot import load_robot

    folder = out / f"arm{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    robot = load_robot("panda")
    hidden = hidden_arms.draw(seed, robot)
    hidden_file = hidden_arms.write(folder / "hidden_params.yaml", hidden, robot.name)
    identified = folder / "robot_params.yaml"
    log = folder / "sysid.log"
    status = "ok"
    t0 = time.time()
    if not identified.is_file():
        excite = ["sysid", "excite", "run_on=sim", f"real_params={hidden_file}", f"duration_s={args.excite_duration}",
                  f"population={args.design_population}", f"generations={args.design_generations}"]
        for name, design in (("excitation", f"design=active seed={seed}"),
                             ("holdout", f"design=random seed={10_000 + seed}")):
            if not (folder / f"{name}_recording").exists():
                code = run_cli([*excite, *design.split(), f"out={folder / f'{name}.yaml'}",
                                f"recording={folder / f'{name}_recording'}"], log)
                if code:
                    raise SystemExit(f"sysid excite failed for arm {seed} (status {code}); see {log}")
        fit = ["sysid", "fit", f"recording={folder / 'excitation_recording'}",
               f"holdout={folder / 'holdout_recording'}", f"out={identified}", f"max_iters={args.fit_iters}",
               "html_report=false"]
        code = run_cli(fit, log)
        if code == 3:        # failed its held-out check: use it anyway, but say so
            status = "failed held-out check (forced)"
            code = run_cli([*fit, "force=true"], log)
        if code:
            raise SystemExit(f"sysid fit failed for arm {seed} (status {code}); see {log}")
        (folder / "fit_status.txt").write_text(status)
        (folder / "identify_s.txt").write_text(f"{time.time() - t0:.1f}")   # what a rerun reports, not its 0 s
    status = (folder / "fit_status.txt").read_text().strip() if (folder / "fit_status.txt").is_file() else status
    seconds = (folder / "identify_s.txt").read_text().strip() if (folder / "identify_s.txt").is_file() else ""
    fitted = load_params(identified).parameters
    row = {"arm": seed, "fit": status, "identify_s": seconds,
           "latency_true": int(hidden.values["action_latency"]),
           "latency_fit": int(round(fitted["action_latency"].value)) if "action_latency" in fitted else "",
           "payload_true": round(hidden.values["payload_mass"], 3),
           "payload_fit": round(fitted["payload_mass"].value, 3) if "payload_mass" in fitted else ""}
    for kind in ("kp", "armature"):
        errs = [abs(fitted[n].value - v) / v for n, v in hidden.values.items() if n.startswith(kind) and n in fitted]
        row[f"{kind}_median_rel_err"] = round(float(np.median(errs)), 4) if errs else ""
    return Arm(seed, hidden_file, identified), row


def training_layer(args) -> dict:
    """The settings every run pins (not left to the preset): model and planner of the CPU preset, N, updates."""
    from robot_rl.overrides import load_yaml

    preset = load_yaml(ROOT / "robot_rl/presets" / f"{args.preset}.yaml")     # its `base:` layered in
    return {**preset, "preset": args.preset, "device": "cpu", "envs": args.envs,
            "updates_per_step": args.updates_per_step, "seed_steps": args.seed_steps,
            "action_history": args.action_history, "threads": args.threads, "eval_every": 0, "eval_episodes": 4,
            "tensorboard": False, "checkpoint_every": args.finetune_steps}


METHODS = {NOMINAL.name: "nominal", FINETUNES[0].name: "fine-tuned", FINETUNES[1].name: "ceiling",
           FINETUNES[2].name: "fine-tuned-randomisation", CONTINUED[0].name: "continued",
           CONTINUED[1].name: "ceiling-continued", CONTINUED[2].name: "continued-randomisation",
           RETRAINED.name: "retrained"}   # run folder names


def make_runs(condition: Condition, arms: list[Arm], seeds: list[int], budget: Budget, layer: dict, out: Path,
              nominal_agents: dict[int, Path]):
    from robot_rl.sweep import make_run

    runs = []
    for seed in seeds:
        for arm in (arms if condition.per_arm else [None]):
            keys = condition.keys(arm, budget, nominal_agents.get(seed))
            labels = {"arm": str(arm.seed)} if arm else {}
            method = METHODS[condition.name]
            run = make_run(f"panda-{ARGS.task}", method, seed, {"pinned": layer, condition.name: keys}, out,
                           labels=labels)
            runs.append((arm, seed, run))
    return runs


def execute(runs, args) -> list[dict]:
    from robot_rl.sweep import check_grid, execute as sweep_execute

    check_grid([r for _, _, r in runs])
    return sweep_execute([r for _, _, r in runs], address=args.address, local_cpus=args.cpus)


class Evaluations:
    """evaluations.csv: one row per (condition, arm, seed, target), kept across reruns."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict] = []
        if path.is_file():
            with path.open(newline="") as f:
                self.rows = list(csv.DictReader(f))
            for r in self.rows:
                r["condition"] = RENAMED.get(r["condition"], r["condition"])

    def has(self, condition: str, arm: int, seed: int) -> bool:
        return any(r["condition"] == condition and int(r["arm"]) == arm and int(r["seed"]) == seed
                   for r in self.rows)

    def add(self, rows: list[dict]) -> None:
        from robot_rl.sweep import write_atomic

        self.rows += [{k: str(v) for k, v in r.items()} for r in rows]   # as read back from the CSV: the report
        text = io.StringIO()                                            # keys cells by (arm, seed) strings
        writer = csv.DictWriter(text, fieldnames=EVAL_FIELDS)
        writer.writeheader()
        writer.writerows(self.rows)
        write_atomic(self.path, text.getvalue())


def evaluate_on_arms(condition: str, agent_path: Path, arms: list[Arm], seed: int, marker: dict,
                     evals: Evaluations, args) -> None:
    """The policy at `agent_path` on each arm (hidden arm and PyBullet arm), unless already in the cache."""
    from robot_rl.checkpoint import load_agent
    from robot_rl.evaluate import eval_pool, evaluate

    todo = [a for a in arms if not evals.has(condition, a.seed, seed)]
    if not todo:
        return
    agent, info, payload = load_agent(agent_path, "cpu")
    for arm in todo:
        rows = []
        for target, kwargs in TARGETS.items():
            pool = eval_pool(f"panda-{args.task}", "state", 1, 50_000 + 100 * arm.seed, args.episodes,
                             action_history=info.action_history, params=str(arm.hidden), **kwargs)
            result = evaluate(agent, pool, args.episodes, 50_000 + 100 * arm.seed)
            pool.close()
            rows.append({"condition": condition, "arm": arm.seed, "seed": seed, "target": target,
                         "success": result["success"], "return": round(result["return"], 3),
                         "train_steps": payload["step"], "train_s": marker.get("train_s", "")})
            print(f"  {condition:<48} arm {arm.seed} seed {seed} on the {target:<12}: success "
                  f"{100 * result['success']:5.1f} %", flush=True)
        evals.add(rows)


def evaluate_in_description(agent_path: Path, seed: int, evals: Evaluations, args) -> None:
    """A nominal agent in the simulator it was trained in (arm -1): the other side of its sim-to-real gap."""
    from robot_rl.checkpoint import load_agent
    from robot_rl.evaluate import eval_pool, evaluate

    if evals.has(NOMINAL.name, -1, seed):
        return
    agent, info, payload = load_agent(agent_path, "cpu")
    pool = eval_pool(f"panda-{args.task}", "state", 1, 50_000, args.episodes, action_history=info.action_history)
    result = evaluate(agent, pool, args.episodes, 50_000)
    pool.close()
    evals.add([{"condition": NOMINAL.name, "arm": -1, "seed": seed, "target": DESCRIPTION, "success": result["success"],
                "return": round(result["return"], 3), "train_steps": payload["step"], "train_s": ""}])
    print(f"  nominal seed {seed} in the description's simulator: success {100 * result['success']:5.1f} %", flush=True)


def report(evals: Evaluations, id_rows: list[dict], args) -> str:
    """The markdown table per condition and target, and the gap-closed figures."""
    by: dict[tuple[str, str], list[float]] = {}
    for r in evals.rows:
        by.setdefault((r["condition"], r["target"]), []).append(float(r["success"]))

    lines = ["| policy | steps | hidden arm (MuJoCo) | PyBullet arm | runs |", "|---|---|---|---|---|"]
    for cond in ORDER:
        cells = []
        for target in TARGETS:
            v = np.array(by.get((cond, target), []))
            cells.append(f"{100 * v.mean():.0f} ± {100 * v.std():.0f} %" if v.size else "-")
        steps = sorted({int(r["train_steps"]) for r in evals.rows if r["condition"] == cond})
        runs = len({(r["arm"], r["seed"]) for r in evals.rows if r["condition"] == cond and r["target"] in TARGETS})
        steps_text = f"{steps[0]}-{steps[-1]}" if steps and steps[0] != steps[-1] else (str(steps[0]) if steps else "-")
        lines.append(f"| {cond} | {steps_text} | {cells[0]} | {cells[1]} | {runs} |")
    own = np.array(by.get((NOMINAL.name, DESCRIPTION), []))
    if own.size:
        lines += ["", f"The nominal agents in the simulator they were trained in (the description's): "
                      f"{100 * own.mean():.0f} ± {100 * own.std():.0f} % ({own.size} seeds, same episode count)."]
    lines += ["", "Gap closed = (after - nominal) / (ceiling - nominal), over the (arm, seed) cells that have all three "
              "(means; the cells' count in brackets):", "",
              "| after | ceiling | hidden arm | PyBullet arm |", "|---|---|---|---|"]
    for ceiling, conds in FAMILIES.items():
        for cond in conds:
            cells = []
            for target in TARGETS:
                value = {c: {(r["arm"], r["seed"]): float(r["success"]) for r in evals.rows
                             if r["condition"] == c and r["target"] == target} for c in (NOMINAL.name, cond, ceiling)}
                common = sorted(set.intersection(*(set(v) for v in value.values())))
                if not common:
                    cells.append("-")
                    continue
                nominal, after, top = (np.mean([value[c][k] for k in common]) for c in (NOMINAL.name, cond, ceiling))
                cells.append(f"{100 * (after - nominal) / (top - nominal):.0f} % ({len(common)})" if top > nominal else
                             f"no gap: ceiling {100 * top:.0f} % <= nominal {100 * nominal:.0f} % ({len(common)})")
            lines.append(f"| {cond} | {ceiling} | {cells[0]} | {cells[1]} |")
    lines += ["", "Paired, per arm x seed (same evaluation episodes): continued minus retrained at equal environment "
              "steps (the nominal run + its continuation against retraining from scratch in the identified "
              "simulator):"]
    for target in TARGETS:
        pairs = []
        for r in evals.rows:
            if r["condition"] == CONTINUED[0].name and r["target"] == target:
                other = [o for o in evals.rows if o["condition"] == RETRAINED.name and o["target"] == target
                         and o["arm"] == r["arm"] and o["seed"] == r["seed"]]
                if other:
                    pairs.append(float(r["success"]) - float(other[0]["success"]))
        if pairs:
            lines.append(f"- {target}: {100 * np.mean(pairs):+.0f} points (mean of {len(pairs)} pairs)")
    lines += ["", "| arm | fit | latency true / fitted | payload true / fitted (kg) | kp median error | "
              "armature median error |", "|---|---|---|---|---|---|"]
    for r in id_rows:
        kp = f"{100 * float(r['kp_median_rel_err']):.1f} %" if r["kp_median_rel_err"] != "" else "-"
        arm_err = f"{100 * float(r['armature_median_rel_err']):.0f} %" if r["armature_median_rel_err"] != "" else "-"
        lines.append(f"| {r['arm']} | {r['fit']} | {r['latency_true']} / {r['latency_fit']} | "
                     f"{r['payload_true']} / {r['payload_fit']} | {kp} | {arm_err} |")
    return "\n".join(lines) + "\n"


ARGS: argparse.Namespace


def main() -> int:
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="reach")
    ap.add_argument("--arms", default="0,1,2", help="seeds of calibration.hidden_arms.draw")
    ap.add_argument("--seeds", default="1,2,3", help="training seeds (nominal, fine-tuned, ceiling)")
    ap.add_argument("--retrain-seeds", default="1", help="training seeds of the from-scratch retraining")
    ap.add_argument("--steps", type=int, default=3200, help="environment steps of a from-scratch run")
    ap.add_argument("--finetune-steps", type=int, default=400, help="environment steps of a fine-tuning run")
    ap.add_argument("--retrain-steps", type=int, default=0,
                    help="steps of the from-scratch retraining; 0: --steps + --finetune-steps (the nominal agent's "
                         "and its fine-tuning's together)")
    ap.add_argument("--finetune-seed-steps", type=int, default=100,
                    help="fine-tuning: steps acted by the nominal agent before the first update")
    ap.add_argument("--preset", default="cpu", help="the model/planner preset pinned into every run")
    ap.add_argument("--envs", type=int, default=4)
    ap.add_argument("--updates-per-step", type=float, default=0.5)
    ap.add_argument("--seed-steps", type=int, default=500, help="from scratch: random steps before learning")
    ap.add_argument("--action-history", type=int, default=2, help="the last k actions in the observation")
    ap.add_argument("--episodes", type=int, default=8, help="evaluation episodes per policy and target")
    ap.add_argument("--excite-duration", type=float, default=6.0)
    ap.add_argument("--design-population", type=int, default=4)
    ap.add_argument("--design-generations", type=int, default=2)
    ap.add_argument("--fit-iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/sim2real"))
    ap.add_argument("--cpus", type=int, default=1, help="CPUs of the local Ray; one training per CPU (1: one at a time)")
    ap.add_argument("--address", default="", help="a Ray cluster (auto, host:port, ray://...) instead")
    ap.add_argument("--stages", default="nominal,nominal-sim,continue,retrain,continue+dr,finetune,finetune+dr",
                    help="training stages, run in this order (a stage's runs go seed by seed, arm by arm)")
    ap.add_argument("--report-only", action="store_true", help="only rewrite the table from evaluations.csv")
    ARGS = args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    retrain_seeds = [int(s) for s in args.retrain_seeds.split(",") if s]
    budget = Budget(args.steps, args.retrain_steps or args.steps + args.finetune_steps, args.finetune_steps,
                    args.finetune_seed_steps)
    evals = Evaluations(out / "evaluations.csv")
    t0 = time.time()

    arms, id_rows = [], []
    for seed in (int(s) for s in args.arms.split(",")):
        arm, row = identify(seed, out, args)
        arms.append(arm)
        id_rows.append(row)
        print(f"arm {seed}: {row}", flush=True)
    from robot_rl.sweep import connect, write_atomic

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(id_rows[0]))
    writer.writeheader()
    writer.writerows(id_rows)
    write_atomic(out / "identification.csv", text.getvalue())
    stages = [s for s in args.stages.split(",") if s] if not args.report_only else []
    unknown = set(stages) - {"nominal", "nominal-sim", "retrain", "finetune", "finetune+dr", "continue", "continue+dr"}
    if unknown:
        raise SystemExit(f"--stages: unknown {sorted(unknown)}; expected nominal, nominal-sim, continue, continue+dr, retrain, "
                         "finetune, finetune+dr")
    layer = training_layer(args)

    def train_and_evaluate(condition: Condition, runs):
        for arm, seed, run in runs:
            if condition.continues and not (run.folder / "agent.pt").is_file():
                run.folder.mkdir(parents=True, exist_ok=True)
                for name in ("agent.pt", "buffer.npz"):   # resume=true then continues the nominal run here
                    shutil.copyfile(nominal_agents[seed].with_name(name), run.folder / name)
            marker = execute([(arm, seed, run)], args)[0]
            evaluate_on_arms(condition.name, run.folder / "agent.pt", [arm] if arm else arms, seed, marker, evals,
                             args)
            write_report()

    def write_report():   # after every stage: a run stopped early still leaves its table
        header = (f"panda-{args.task}; arms {args.arms} (calibration.hidden_arms), training seeds {args.seeds} "
                  f"(retrained: {args.retrain_seeds}); nominal from scratch {args.steps} steps, fine-tuning "
                  f"{args.finetune_steps} steps ({args.finetune_seed_steps} acted before the first update), "
                  f"retrained from scratch {budget.retrain_steps} steps; preset {args.preset}, envs {args.envs}, "
                  f"updates_per_step {args.updates_per_step}, action_history {args.action_history}, "
                  f"{args.threads} thread(s); {args.episodes} evaluation episodes per policy and target; "
                  f"success mean ± std over arms x seeds.\n\n")
        text = header + report(evals, id_rows, args)
        write_atomic(out / "sim2real.md", text)
        print(text, flush=True)

    runs = make_runs(NOMINAL, arms, seeds, budget, layer, out, {})
    nominal_agents = {seed: run.folder / "agent.pt" for _, seed, run in runs}
    started = bool(stages) and connect(args.address, args.cpus)   # one Ray session for every stage
    try:
        groups = {"finetune": FINETUNES[:2], "finetune+dr": FINETUNES[2:], "continue": CONTINUED[:2],
                  "continue+dr": CONTINUED[2:]}   # a condition with its ceiling, or the randomised one
        for stage in stages:
            if stage == "nominal-sim":
                for _, seed, run in runs:
                    evaluate_in_description(run.folder / "agent.pt", seed, evals, args)
                write_report()
            elif stage == "nominal":
                print(f"nominal: {len(runs)} runs of {args.steps} steps", flush=True)
                train_and_evaluate(NOMINAL, runs)
            elif stage == "retrain":
                retrain = make_runs(RETRAINED, arms, retrain_seeds, budget, layer, out, {})
                print(f"retrained: {len(retrain)} runs of {budget.retrain_steps} steps", flush=True)
                train_and_evaluate(RETRAINED, retrain)
            else:
                print(f"{stage}: {[c.name for c in groups[stage]]} x {len(arms)} arms x {len(seeds)} seeds, "
                      f"{args.finetune_steps} steps each", flush=True)
                for seed in seeds:
                    for arm in arms:
                        for condition in groups[stage]:
                            train_and_evaluate(condition, make_runs(condition, [arm], [seed], budget, layer, out,
                                                                    nominal_agents))
    finally:
        if started:
            import ray

            ray.shutdown()
    if not stages:
        write_report()
    print(f"{time.time() - t0:.0f} s; wrote {out / 'sim2real.md'}, evaluations.csv, identification.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
