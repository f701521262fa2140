"""`robot-rl export checkpoint=runs/x/agent.pt out=bundles/x`: a checkpoint -> a policy bundle, the only thing
hardware/ reads from training (schema in docs/formats.md, read by hardware/bundle.py):

  policy.onnx   observation -> deterministic policy-prior action (robot_rl/onnx_graphs.PolicyGraph)
  planner.onnx  the whole MPPI planner, unrolled with fixed shapes (robot_rl/onnx_graphs.PlannerGraph)
  bundle.json   observation layout (with the last-actions length), the action space (joint or tool-point, with its
                settings), joints and limits, control rate, planner settings,
                sha256 and input/output specs of both models, safety limits and the numpy FK chain

Both graphs are traced with batch 1 by torch.onnx.export (TorchScript exporter: the planner's static loops
unroll at trace time), checked with onnx.checker and run once in onnxruntime against PyTorch before the bundle
is written: the policy's action, and for the planner what is continuous in the weights (every iteration's
trajectory values, the MPPI mean) and its discrete choices (each iteration's elite set, the executed elite) only
where they are unambiguous; a choice between near-tied trajectories (a lightly trained model's values differ by
less than the two implementations' rounding) may go either way, and the comparison stops there
(`planner_parity`). The folder is built next to `out` and renamed into place, so a bundle is complete or absent.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

import robot_rl
from robot_rl.agent_config import PlannerConfig, check_planner, model_dims

BUNDLE_FORMAT = "robot_rl.bundle"
BUNDLE_VERSION = 1
OPSET = 17
PARITY_TOL = 1e-4
# A discrete choice (top-k elites, the executed elite) is ambiguous when its margin in PyTorch is below this many
# times the largest difference between onnxruntime's and PyTorch's trajectory values.
TIE_FACTOR = 10.0
PARITY_DRAWS = 3          # planner noise draws tried for a comparison through to the action
# A tool-point action space clips its targets to a box; without workspace_lower/upper the safety filter's box is
# that one grown by this margin (m), so IK residuals never trip it but a wrong mapping does.
SAFETY_BOX_MARGIN = 0.02
Q_HEADS_RULE = ("value of a trajectory's last latent = mean over all {n} Q heads minus value_std_coef x their "
                "standard deviation (no random pair of heads as in the paper: deterministic given the noise inputs)")


class ExportError(ValueError):
    pass


@dataclass
class Config:
    checkpoint: str = "runs/default/agent.pt"
    out: str = "bundles/default"
    overwrite: bool = False
    opset: int = OPSET
    use_planner_config: bool = False     # true: export the planner.* keys below instead of the checkpoint's
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    workspace_lower: list[float] = field(default_factory=list)   # tool-point box for the safety filter, m
    workspace_upper: list[float] = field(default_factory=list)   # (both or neither; empty: no box)


def onnx_bytes(module, args: tuple, input_names: list[str], output_names: list[str], opset: int) -> bytes:
    import onnx
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(module, args, buf, dynamo=False, opset_version=opset, input_names=input_names,
                          output_names=output_names, do_constant_folding=True)
    data = buf.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data


def check_parity(data: bytes, module, args: tuple, input_names: list[str], what: str) -> float:
    """Run the ONNX graph and the module on the same inputs; the largest absolute output difference."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {name: a.numpy() for name, a in zip(input_names, args)})
    with torch.no_grad():
        ref = module(*args)
    ref = ref if isinstance(ref, tuple) else (ref,)
    err = max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref))
    if not err <= PARITY_TOL:
        raise ExportError(f"{what}: onnxruntime differs from PyTorch by {err:.3g} (> {PARITY_TOL})")
    return err


class _RecordChoices:
    """PyTorch side of the planner check: the inputs and results of every `torch.topk` and `torch.argmax` call
    (the planner's elite selections and its executed-elite draw), recorded through a TorchFunctionMode so the
    planner code runs unchanged."""

    def __init__(self):
        import torch
        from torch.overrides import TorchFunctionMode

        record = self
        self.topk: list[tuple[np.ndarray, np.ndarray]] = []
        self.argmax: list[np.ndarray] = []

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                if func is torch.topk:
                    record.topk.append((args[0].detach().numpy().copy(), out[1].numpy().copy()))
                elif func is torch.argmax:
                    record.argmax.append(args[0].detach().numpy().copy())
                return out

        self.mode = Mode()


def _with_choice_outputs(data: bytes) -> tuple[bytes, int]:
    """The ONNX planner with extra outputs: each TopK's input values and output indices (graph order = iteration
    order) and the last ArgMax's input. Returns (model bytes, number of TopK nodes)."""
    import onnx

    model = onnx.load_from_string(data)
    topk = [n for n in model.graph.node if n.op_type == "TopK"]
    argmax = [n for n in model.graph.node if n.op_type == "ArgMax"]
    if not topk or not argmax:
        raise ExportError("planner.onnx: no TopK/ArgMax nodes (the elite selection); cannot check its choices")
    extra = ([(n.input[0], onnx.TensorProto.FLOAT) for n in topk] + [(n.output[1], onnx.TensorProto.INT64) for n in topk]
             + [(argmax[-1].input[0], onnx.TensorProto.FLOAT)])
    model.graph.output.extend(onnx.helper.make_tensor_value_info(name, kind, None) for name, kind in extra)
    return model.SerializeToString(), len(topk)


def planner_parity(data: bytes, module, draws: list[tuple], input_names: list[str], elites: int) -> dict:
    """Check the planner graph against PyTorch on the same inputs and noise, for each of `draws` (input tuples)
    until one is compared through to the action; returns the report of the most complete comparison.

    Continuous in the weights, compared to PARITY_TOL (relative to the values' scale): the trajectory values of
    each iteration, the MPPI mean (next_plan) and the action. The discrete choices are compared only where
    unambiguous: an iteration whose elite set differs must have a top-k margin below TIE_FACTOR x the values'
    difference (else the graph is wrong), and the comparison stops there (later iterations sample around a
    different mean); a different executed elite likewise needs a near-tie in the Gumbel-max draw.
    """
    import onnxruntime as ort

    augmented, n_iter = _with_choice_outputs(data)
    session = ort.InferenceSession(augmented, providers=["CPUExecutionProvider"])
    best = None
    for draw, args in enumerate(draws):
        report = _compare_planner(session, n_iter, module, args, input_names, elites)
        report["draw"] = draw
        if best is None or (report["iterations_compared"], report["action_max_abs"] is not None) > \
                (best["iterations_compared"], best["action_max_abs"] is not None):
            best = report
        if not report["ambiguous"]:
            break
    return best


def _compare_planner(session, n_iter: int, module, args: tuple, input_names: list[str], elites: int) -> dict:
    import torch

    got = session.run(None, {name: a.numpy() for name, a in zip(input_names, args)})
    action, next_plan = got[0], got[1]
    values, indices, logits = got[2:2 + n_iter], got[2 + n_iter:2 + 2 * n_iter], got[-1]
    record = _RecordChoices()
    with torch.no_grad(), record.mode:
        ref_action, ref_plan = (t.numpy() for t in module(*args))
    ref_topk = [(v, i) for v, i in record.topk if i.shape[-1] == elites]
    if len(ref_topk) != n_iter or not record.argmax:
        raise ExportError(f"planner.onnx: {n_iter} elite selections in the graph, {len(ref_topk)} in PyTorch")
    scale = max(1.0, float(np.abs(ref_topk[0][0]).max()))
    report = {"iterations_compared": 0, "values_max_abs": 0.0, "plan_max_abs": None, "action_max_abs": None,
              "ambiguous": ""}
    for i, ((ref_v, ref_idx), v, idx) in enumerate(zip(ref_topk, values, indices)):
        err = float(np.abs(v - ref_v).max())
        report["values_max_abs"] = max(report["values_max_abs"], err)
        report["iterations_compared"] = i + 1
        if not err <= PARITY_TOL * scale:
            raise ExportError(f"planner.onnx: trajectory values of MPPI iteration {i} differ from PyTorch by "
                              f"{err:.3g} (> {PARITY_TOL} x scale {scale:.3g}): the graph computes another model")
        tie = TIE_FACTOR * max(report["values_max_abs"], 1e-7 * scale)
        if set(idx[0].tolist()) != set(ref_idx[0].tolist()):
            ranked = np.sort(ref_v[0])[::-1]
            gap = float(ranked[elites - 1] - ranked[elites]) if ranked.size > elites else 0.0
            if gap > tie:
                raise ExportError(f"planner.onnx: the elite set of MPPI iteration {i} differs from PyTorch's though "
                                  f"its top-{elites} margin {gap:.3g} is far above the values' difference")
            report["ambiguous"] = (f"iteration {i}: elites {elites} and {elites + 1} within {gap:.2g} (values "
                                   f"differ by {report['values_max_abs']:.2g}); later outputs not compared")
            return report
    report["plan_max_abs"] = err = float(np.abs(next_plan - ref_plan).max())
    if not err <= PARITY_TOL:
        raise ExportError(f"planner.onnx: the MPPI mean (next_plan) differs from PyTorch by {err:.3g} (> {PARITY_TOL}) "
                          f"with the same elites in every iteration")
    report["action_max_abs"] = err = float(np.abs(action - ref_action).max())
    if not err <= PARITY_TOL:
        ranked = np.sort(record.argmax[-1][0])[::-1]
        gap = float(ranked[0] - ranked[1])
        onnx_choice, ref_choice = int(np.argmax(logits[0])), int(np.argmax(record.argmax[-1][0]))
        if onnx_choice == ref_choice or gap > tie:
            raise ExportError(f"planner.onnx: the action differs from PyTorch by {err:.3g} (> {PARITY_TOL}) though "
                              f"the executed elite is {'the same' if onnx_choice == ref_choice else 'unambiguous'}")
        report["ambiguous"] = f"executed elite: top two within {gap:.2g}; action not compared"
        report["action_max_abs"] = None
    return report


def io_spec(names: list[str], tensors) -> list[dict]:
    return [{"name": n, "shape": list(t.shape), "dtype": str(np.dtype(t.numpy().dtype))} for n, t in zip(names, tensors)]


def example_obs(model, generator) -> tuple:
    import torch

    obs = []
    for key in model.encoder.keys:
        shape = (1, *model.obs_spec[key])
        if key == "pixels":
            obs.append(torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator))
        else:
            obs.append(torch.randn(shape, generator=generator))
    return tuple(obs)


OBS_KEYS = ("state", "pixels")   # the graphs' observation inputs, in the world model's order


def robot_interface(env_info, workspace: tuple[list[float], list[float]] | None = None, source: str = "") -> dict:
    """bundle.json's non-model part for a sim/ robot task: task, robot, control rate, observation layout, action
    block, joint/gripper names, position limits, safety limits and the FK chain. The robot environment
    (robot_rl/training/robot_env.py) builds its PolicyIO and safety limits from this same dict
    (hardware.bundle.robot_interface_from_dict), so it observes and commands exactly what a deployed bundle would."""
    from hardware.safety_config import limits_from_robot
    from sim.action_mapping import JointActions
    from sim.kinematic_chain import chain_from_mjcf
    from sim.robot import load_robot

    if not env_info.robot:
        raise ExportError(f"{source}: task {env_info.task!r} has no robot; bundles are for the sim/ robot tasks "
                          f"(their joints, limits and action scaling go into bundle.json)")
    robot = load_robot(env_info.robot)
    spec = env_info.obs_spec
    keys = [k for k in OBS_KEYS if k in spec]
    a_dim = env_info.action_dim
    action_space = env_info.action_space or JointActions(robot.lower, robot.upper, robot.max_joint_step,
                                                         robot.gripper_max_width).to_dict()   # older checkpoints
    if a_dim != action_space["dim"]:
        raise ExportError(f"{source}: action size {a_dim}, but the {action_space['space']!r} action space of robot "
                          f"{robot.name!r} takes {action_space['dim']}")
    chain = chain_from_mjcf(robot.description, robot.arm_joints, robot.ee_site)
    if not workspace and "workspace_low" in action_space:
        workspace = ([v - SAFETY_BOX_MARGIN for v in action_space["workspace_low"]],
                     [v + SAFETY_BOX_MARGIN for v in action_space["workspace_high"]])
    lower, upper = workspace if workspace else (None, None)
    safety = limits_from_robot(robot, lower, upper, chain if workspace else None)
    return {
        "task": env_info.task, "robot": robot.name, "control_hz": env_info.control_hz,
        "observation": {
            "keys": keys,
            "state_layout": [list(x) for x in env_info.obs_layout] if "state" in keys and env_info.obs_layout else [],
            "state_dim": spec["state"][0][0] if "state" in spec else None,
            "pixels_shape": list(spec["pixels"][0]) if "pixels" in spec else None,
            "frame_stack": env_info.frame_stack,
            "action_history": env_info.action_history,
            "normalisation": {"state": "none: raw float32 as the environment returns it",
                              "pixels": "uint8 0..255 in (C, H, W), C = 3 x frame_stack oldest first; "
                                        "scaled to [-0.5, 0.5] inside the graphs"}},
        "action": action_space,
        "joint_names": list(robot.arm_joints), "gripper_joints": list(robot.gripper_joints),
        "position_lower": robot.lower.tolist(), "position_upper": robot.upper.tolist(),
        "safety": safety.to_dict(), "kinematics": chain,
    }


def build_bundle(agent, env_info, planner_cfg: PlannerConfig, folder: Path, opset: int = OPSET,
                 workspace: tuple[list[float], list[float]] | None = None, source: str = "") -> dict:
    """Write policy.onnx, planner.onnx and bundle.json into (an existing, empty) `folder`; returns bundle.json."""
    import torch

    from robot_rl.onnx_graphs import PlannerGraph, PolicyGraph
    from robot_rl.planner import sample_noise

    check_planner(planner_cfg)
    interface = robot_interface(env_info, workspace, source)
    model = agent.model.eval()
    keys = list(model.encoder.keys)
    if keys != interface["observation"]["keys"]:
        raise ExportError(f"{source}: the model takes {keys}, the environment observes "
                          f"{interface['observation']['keys']}")
    gen = torch.Generator().manual_seed(0)
    obs = example_obs(model, gen)
    a_dim = env_info.action_dim

    policy = PolicyGraph(model)
    policy_data = onnx_bytes(policy, obs, keys, ["action"], opset)
    policy_err = check_parity(policy_data, policy, obs, keys, "policy.onnx")

    planner = PlannerGraph(model, planner_cfg, agent.discount)
    plan_names = [*keys, "prev_plan", "is_first", "noise", "policy_noise", "select_noise"]
    prev = torch.zeros(1, planner_cfg.horizon, a_dim)
    plan_args = (*obs, prev, torch.tensor([True]), *sample_noise(planner_cfg, 1, a_dim, generator=gen))
    planner_data = onnx_bytes(planner, plan_args, plan_names, ["action", "next_plan"], opset)
    # further noise draws, in case near-tied values leave the first one's later iterations uncompared
    draws = [plan_args] + [(*obs, prev, torch.tensor([True]), *sample_noise(planner_cfg, 1, a_dim, generator=gen))
                           for _ in range(PARITY_DRAWS - 1)]
    planner_check = planner_parity(planner_data, planner, draws, plan_names, planner_cfg.elites)
    planner_err = max(v for v in (planner_check["values_max_abs"], planner_check["plan_max_abs"],
                                  planner_check["action_max_abs"]) if v is not None)

    with torch.no_grad():
        policy_out = (policy(*obs),)
        planner_out = planner(*plan_args)
    models = {}
    for name, data, names, args, outs, err in (
            ("policy", policy_data, keys, obs, policy_out, policy_err),
            ("planner", planner_data, plan_names, plan_args, planner_out, planner_err)):
        path = folder / f"{name}.onnx"
        path.write_bytes(data)
        models[name] = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(),
                        "inputs": io_spec(names, args), "outputs": io_spec(["action", "next_plan"][:len(outs)], outs),
                        "export_parity_max_abs": err}
    models["planner"]["export_parity"] = planner_check

    dims = model_dims(agent.cfg)
    bundle = {
        "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "exporter_version": robot_rl.__version__,
        "source_checkpoint": source, **interface,
        "model": {"preset": agent.cfg.model_size, **vars(dims), "num_bins": agent.cfg.num_bins},
        "planner": {"samples": planner_cfg.samples, "iterations": planner_cfg.iterations,
                    "horizon": planner_cfg.horizon, "elites": planner_cfg.elites,
                    "policy_samples": planner_cfg.policy_samples, "temperature": planner_cfg.temperature,
                    "min_std": planner_cfg.min_std, "max_std": planner_cfg.max_std,
                    "value_std_coef": planner_cfg.value_std_coef, "center_std": planner_cfg.center_std,
                    "discount": agent.discount, "q_heads": Q_HEADS_RULE.format(n=dims.num_q)},
        "opset": opset, "models": models,
    }
    (folder / "bundle.json").write_text(json.dumps(bundle, indent=1))
    return bundle


def export(checkpoint: str | Path, out: str | Path, planner_cfg: PlannerConfig | None = None, opset: int = OPSET,
           overwrite: bool = False, workspace: tuple[list[float], list[float]] | None = None) -> dict:
    """Export a checkpoint to the bundle folder `out` atomically; returns bundle.json's content."""
    from robot_rl.checkpoint import load_agent

    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"out={out}: exists (overwrite=true replaces it)")
    agent, env_info, _ = load_agent(checkpoint, device="cpu")
    cfg = planner_cfg or agent.cfg.planner
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        bundle = build_bundle(agent, env_info, cfg, tmp, opset, workspace, str(checkpoint))
        if out.exists():  # overwrite: move the old one aside first so `out` is never half-written
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return bundle


def run(config: Config) -> int:
    import torch

    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    workspace = None
    if config.workspace_lower or config.workspace_upper:
        if len(config.workspace_lower) != 3 or len(config.workspace_upper) != 3:
            raise ExportError(f"workspace_lower={config.workspace_lower}, workspace_upper={config.workspace_upper}: "
                              f"expected 3 numbers each (x, y, z in m), or both empty")
        workspace = (list(config.workspace_lower), list(config.workspace_upper))
    if not config.use_planner_config and config.planner != PlannerConfig():
        raise ExportError("planner.* given with use_planner_config=false: they would be ignored (the "
                          "checkpoint's planner is exported); add use_planner_config=true to export them")
    cfg = replace(config.planner) if config.use_planner_config else None
    bundle = export(config.checkpoint, config.out, cfg, config.opset, config.overwrite, workspace)
    p = bundle["planner"]
    print(f"wrote {config.out}: {bundle['task']} ({bundle['model']['preset']}), observation "
          f"{bundle['observation']['keys']}, planner {p['samples']}x{p['iterations']}x{p['horizon']}, parity "
          f"policy {bundle['models']['policy']['export_parity_max_abs']:.2g} planner "
          f"{bundle['models']['planner']['export_parity_max_abs']:.2g}")
    return 0
