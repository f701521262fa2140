"""robot-rl export: ONNX (onnxruntime, through hardware/'s runtime) against the PyTorch agent on the same inputs
and noise, policy and planner, state and state+pixels, two model sizes; the CLI writes a complete bundle."""
import json

import numpy as np
import pytest
import torch

from hardware.policy_runtime import open_bundle, planner_noise
from robot_rl.cli import main as cli_main
from robot_rl.export import ExportError, export
from robot_rl.planner import plan
from tests.hardware.exported_bundle import make_bundle

TOL = 1e-4
CASES = {"tiny-state": ("state", {}), "1M-state": ("state", {"model_size": "1M"}),
         "tiny-state+pixels": ("state+pixels", {}), "tiny-pixels": ("pixels", {})}


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def observation(rng, bundle):
    state = rng.standard_normal(bundle.inputs["policy"][0].shape[1:]).astype(np.float32) \
        if "state" in bundle.obs_keys else None
    pixels = rng.integers(0, 256, bundle.pixels_shape, dtype=np.uint8) if bundle.pixels_shape else None
    return state, pixels


def torch_obs(state, pixels):
    obs = {}
    if state is not None:
        obs["state"] = torch.as_tensor(state)[None]
    if pixels is not None:
        obs["pixels"] = torch.as_tensor(pixels)[None]
    return obs


@pytest.mark.parametrize("case", list(CASES))
def test_onnx_matches_pytorch_policy_and_planner_over_steps(tmp_path, case):
    obs_type, sizes = CASES[case]
    folder, agent = make_bundle(tmp_path, obs_type, **sizes)
    model, cfg = agent.model.eval(), agent.cfg.planner
    policy = open_bundle(folder, "policy")
    planner = open_bundle(folder, "planner", seed=7)
    bundle = planner.bundle
    noise_rng = np.random.default_rng(7)   # the runtime's draws, replayed for PyTorch
    shapes = planner.runtime.noise_shapes
    rng = np.random.default_rng(0)
    prev = torch.zeros(1, cfg.horizon, bundle.action_dim)
    actions = []
    for step in range(4):
        state, pixels = observation(rng, bundle)
        x = torch_obs(state, pixels)
        with torch.no_grad():
            _, ref_policy, _ = model.pi(model.encode(x))
        np.testing.assert_allclose(policy.runtime.act(state, pixels), ref_policy[0].numpy(), atol=TOL)

        first = step in (0, 3)   # step 3: a new episode in the middle of the run resets the warm start
        got = planner.runtime.act(state, pixels, first=first)
        noise = {k: torch.as_tensor(v) for k, v in planner_noise(noise_rng, shapes).items()}
        with torch.no_grad():
            ref, prev, _ = plan(model, x, prev, torch.tensor([first]), noise["noise"], noise["policy_noise"],
                                noise["select_noise"], cfg, agent.discount)
        np.testing.assert_allclose(got, ref[0].numpy(), atol=TOL)
        np.testing.assert_allclose(planner.runtime.plan, prev.numpy(), atol=TOL)
        actions.append(got)
    assert np.ptp(np.stack(actions), axis=0).max() > 1e-3, "the planner's actions never changed"


def test_cli_writes_a_complete_bundle_and_refuses_to_overwrite(tmp_path, capsys):
    folder, _ = make_bundle(tmp_path)
    ckpt, out = tmp_path / "agent.pt", tmp_path / "cli_bundle"
    args = ["export", f"checkpoint={ckpt}", f"out={out}", "use_planner_config=true", "planner.samples=32",
            "planner.iterations=1", "planner.elites=4", "planner.policy_samples=4",
            "workspace_lower=[0.1,-0.5,0.0]", "workspace_upper=[0.8,0.5,0.8]"]
    assert cli_main(args) == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["bundle.json", "planner.onnx", "policy.onnx"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp folder left behind"
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["planner"]["samples"] == 32 and meta["planner"]["iterations"] == 1
    assert meta["safety"]["workspace"]["lower"] == [0.1, -0.5, 0.0]
    assert meta["models"]["planner"]["inputs"][3]["shape"] == [1, 1, 32, 4, 8]  # noise (I, B, S, H+1, A)
    loaded = open_bundle(out, "planner")
    assert loaded.safety.workspace is not None and loaded.control_hz == 20.0
    with pytest.raises(ExportError, match="exists"):
        export(ckpt, out)
    assert cli_main(args[:1] + [f"checkpoint={tmp_path / 'none.pt'}", f"out={tmp_path / 'x'}"]) == 2
    # planner.* without use_planner_config=true would be silently ignored: refused instead
    assert cli_main(["export", f"checkpoint={ckpt}", f"out={tmp_path / 'y'}", "planner.samples=64"]) == 2
    assert "use_planner_config=true" in capsys.readouterr().err and not (tmp_path / "y").exists()


def test_a_lightly_trained_agent_exports_and_the_parity_report_says_what_was_compared(tmp_path):
    """80 environment steps of real training (the issue's case: near-tied trajectory values whose elite choices
    may flip between onnxruntime and PyTorch) must not stop the export; what was compared is in bundle.json."""
    run, out = tmp_path / "run", tmp_path / "bundle"
    assert cli_main(["train", "task=panda-reach", "model_size=1M", "enc_dim=32", "mlp_dim=32", "latent_dim=16",
                     "batch_size=16", "planner.samples=64", "planner.policy_samples=4", "planner.elites=8",
                     "planner.iterations=3", "seed_steps=40", "steps=80", "eval_every=0", "checkpoint_every=0",
                     "eval_episodes=1", "progress=false", "tensorboard=false", "threads=1", "seed=3",
                     f"out={run}"]) == 0
    assert cli_main(["export", f"checkpoint={run / 'agent.pt'}", f"out={out}"]) == 0
    report = json.loads((out / "bundle.json").read_text())["models"]["planner"]["export_parity"]
    assert report["iterations_compared"] >= 1 and report["values_max_abs"] <= TOL
    if not report["ambiguous"]:
        assert report["plan_max_abs"] <= TOL and report["action_max_abs"] <= TOL


def _planner_case(agent, cfg):
    from robot_rl.export import example_obs
    from robot_rl.onnx_graphs import PlannerGraph
    from robot_rl.planner import sample_noise

    gen = torch.Generator().manual_seed(0)
    obs = example_obs(agent.model, gen)
    a_dim = agent.model.action_dim
    names = [*agent.model.encoder.keys, "prev_plan", "is_first", "noise", "policy_noise", "select_noise"]
    args = (*obs, torch.zeros(1, cfg.horizon, a_dim), torch.tensor([True]),
            *sample_noise(cfg, 1, a_dim, generator=gen))
    return PlannerGraph(agent.model.eval(), cfg, agent.discount), args, names


def test_a_wrong_planner_graph_fails_the_parity_check():
    """The graph of another model (one weight changed) or of another planner setting (temperature: the same first
    iteration, then another mean) is refused, however the choices fall."""
    import copy
    from dataclasses import replace

    from robot_rl.export import onnx_bytes, planner_parity
    from robot_rl.onnx_graphs import PlannerGraph
    from tests.hardware.exported_bundle import make_agent

    agent, _ = make_agent()
    cfg = agent.cfg.planner
    graph, args, names = _planner_case(agent, cfg)
    good = onnx_bytes(graph, args, names, ["action", "next_plan"], 17)
    report = planner_parity(good, graph, [args], names, cfg.elites)
    assert report["iterations_compared"] == cfg.iterations and report["values_max_abs"] <= TOL

    other = copy.deepcopy(agent.model)
    with torch.no_grad():
        next(other.reward_head.parameters()).view(-1)[0] += 0.5
    wrong_weights = onnx_bytes(PlannerGraph(other, cfg, agent.discount), args, names, ["action", "next_plan"], 17)
    with pytest.raises(ExportError, match="trajectory values of MPPI iteration 0 differ"):
        planner_parity(wrong_weights, graph, [args], names, cfg.elites)

    hotter = PlannerGraph(agent.model, replace(cfg, temperature=cfg.temperature * 20), agent.discount)
    wrong_setting = onnx_bytes(hotter, args, names, ["action", "next_plan"], 17)
    with pytest.raises(ExportError, match="iteration 1 differ|MPPI mean"):
        planner_parity(wrong_setting, graph, [args], names, cfg.elites)
