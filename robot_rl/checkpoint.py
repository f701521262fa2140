"""Agent checkpoints: `agent.pt` (torch.save of a plain dict) written atomically, and the replay buffer
beside it in `buffer.npz` (needed only to resume training).

agent.pt holds: format/version, the train config, the agent config, the environment description
(task, robot, joint names, observation spec and layout, action bounds, episode length, control rate),
the discount, the model/optimiser state, RNG states, and the step/episode counters. Export reads the
config, environment description and model; `resume=true` reads everything.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

import robot_rl
from robot_rl.agent import TDMPC2, pick_device
from robot_rl.agent_config import AgentConfig
from robot_rl.envs import EnvInfo
from robot_rl.overrides import ConfigError, build

FORMAT = "robot_rl.agent"
VERSION = 1


class CheckpointError(ValueError):
    pass


def atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: str | Path, agent: TDMPC2, env_info: EnvInfo, config: dict[str, Any],
                    step: int, episode: int, extra: dict[str, Any] | None = None) -> None:
    from robot_rl.overrides import to_dict

    path = Path(path)
    payload = {
        "format": FORMAT, "version": VERSION, "robot_rl_version": robot_rl.__version__,
        "step": step, "episode": episode, "config": config, "agent_config": to_dict(agent.cfg),
        "env": env_info.as_dict(), "discount": agent.discount, "agent": agent.state_dict(),
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        "extra": extra or {},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # truncated or foreign files fail in many ways inside torch.load
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: field 'format' is {payload.get('format') if isinstance(payload, dict) else None!r}; "
                              f"expected {FORMAT!r}")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: field 'version' is {payload.get('version')!r}; expected {VERSION}")
    for key in ("agent_config", "env", "agent", "step", "discount"):
        if key not in payload:
            raise CheckpointError(f"{path}: missing field {key!r}")
    return payload


def agent_config_from(payload: dict[str, Any], path: str | Path = "checkpoint") -> AgentConfig:
    try:
        return build(AgentConfig, payload["agent_config"], sources=(f"{path}: agent_config",))
    except ConfigError as err:
        raise CheckpointError(str(err)) from None


def load_agent(path: str | Path, device: str | torch.device = "cpu",
               agent_config: AgentConfig | None = None) -> tuple[TDMPC2, EnvInfo, dict[str, Any]]:
    """Rebuild the agent from a checkpoint (model and optimiser state). `agent_config` may override the
    stored one where the architecture is unchanged (e.g. other planner settings).
    Returns (agent, environment description, the raw payload)."""
    payload = load_checkpoint(path)
    cfg = agent_config or agent_config_from(payload, path)
    env_info = EnvInfo.from_dict(payload["env"])
    agent = TDMPC2(cfg, env_info.model_obs_spec, env_info.action_dim, env_info.episode_length,
                   device=pick_device(str(device)))
    agent.discount = float(payload["discount"])
    try:
        agent.load_state_dict(payload["agent"])
    except (RuntimeError, KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: model state does not fit the configured architecture ({err})") from None
    return agent, env_info, payload
