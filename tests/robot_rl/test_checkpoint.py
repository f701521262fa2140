import numpy as np
import pytest
import torch

from robot_rl.agent import TDMPC2
from robot_rl.agent_config import AgentConfig, PlannerConfig
from robot_rl.checkpoint import CheckpointError, load_agent, save_checkpoint
from robot_rl.envs import EnvInfo

CFG = AgentConfig(model_size="1M", enc_dim=32, mlp_dim=32, latent_dim=16,
                  planner=PlannerConfig(samples=32, policy_samples=4, elites=4, iterations=2))
INFO = EnvInfo(task="panda-reach", obs_type="state", obs_spec={"state": ((5,), "float32")}, action_dim=2,
               action_low=[-1.0, -1.0], action_high=[1.0, 1.0], episode_length=40, control_hz=20.0,
               robot="panda", joint_names=["j1", "j2"], obs_layout=[("a", 3), ("b", 2)])


def test_round_trip_restores_model_optimizer_and_metadata(tmp_path):
    torch.manual_seed(0)
    agent = TDMPC2(CFG, INFO.model_obs_spec, 2, INFO.episode_length)
    agent.scale.fill_(3.5)
    save_checkpoint(tmp_path / "agent.pt", agent, INFO, {"task": "panda-reach"}, step=123, episode=4)
    loaded, info, payload = load_agent(tmp_path / "agent.pt")
    assert info == INFO and payload["step"] == 123 and payload["config"] == {"task": "panda-reach"}
    assert loaded.cfg == CFG and loaded.discount == agent.discount and float(loaded.scale) == 3.5
    for (n, a), (_, b) in zip(agent.model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), n
    obs = {"state": np.arange(5, dtype=np.float32)}
    torch.manual_seed(1)
    a1 = agent.act(obs, True)
    torch.manual_seed(1)
    a2 = loaded.act(obs, True)
    np.testing.assert_array_equal(a1, a2)
    assert loaded.optim.state_dict()["param_groups"] == agent.optim.state_dict()["param_groups"]
    assert not list(tmp_path.glob("*.tmp")), "temp file left behind"


def test_bad_files_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_agent(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_agent(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "something.else", "version": 1}, foreign)
    with pytest.raises(CheckpointError, match="'format'"):
        load_agent(foreign)
    torch.manual_seed(0)
    agent = TDMPC2(CFG, INFO.model_obs_spec, 2, 40)
    good = tmp_path / "agent.pt"
    save_checkpoint(good, agent, INFO, {}, 0, 0)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_agent(truncated)
    bigger = AgentConfig(model_size="1M", enc_dim=32, mlp_dim=64, latent_dim=16)
    with pytest.raises(CheckpointError, match="architecture"):
        load_agent(good, agent_config=bigger)
