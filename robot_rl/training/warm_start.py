"""`init=<agent.pt>`: start a run from another run's agent (fine-tuning in an identified simulator, or on the
robot), with that run's replay buffer beside it (`init_buffer=true`, the default, when `buffer.npz` is there).

Why the buffer comes along: updates on a fresh buffer of a few hundred transitions overfit the world model and
the value within tens of updates; measured in benchmarks/sim2real.py (panda-reach, 3 generated arms): a nominal
agent at 33 % success fell to 0 % after 400 fine-tuning steps on a fresh buffer, in the arm's own simulator too,
while the same agent continued with its buffer rose to 53 %. New transitions then mix with the source's.
"""
from __future__ import annotations

from pathlib import Path

from robot_rl.envs import EnvInfo
from robot_rl.replay_buffer import ReplayBuffer

BUFFER_FILE = "buffer.npz"


def warm_start(agent, info: EnvInfo, path: str | Path, buffer: ReplayBuffer | None) -> str:
    """Load the agent of checkpoint `path` into `agent` (and, when `buffer` is given and the run folder holds
    one, its replay buffer); returns what was loaded, for the log. CheckpointError on a mismatch."""
    from robot_rl.checkpoint import CheckpointError, load_checkpoint

    path = Path(path)
    payload = load_checkpoint(path)
    env = EnvInfo.from_dict(payload["env"])
    if env.model_obs_spec != info.model_obs_spec or env.action_dim != info.action_dim:
        raise CheckpointError(f"{path}: its observations {env.model_obs_spec} / {env.action_dim} actions do not "
                              f"match this task's {info.model_obs_spec} / {info.action_dim}")
    try:
        agent.load_state_dict(payload["agent"])
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"{path}: its model does not fit this run's agent keys ({err}); "
                              "use the same model_size/enc_dim/mlp_dim/latent_dim/num_q") from None
    source = path.parent / BUFFER_FILE
    if buffer is None or not source.is_file():
        return f"the agent in {path}" + ("" if buffer is None else f" (no {BUFFER_FILE} beside it: a fresh buffer)")
    try:
        buffer.load(source)
    except ValueError as err:
        raise CheckpointError(f"{source}: cannot carry this buffer over ({err}); use the same buffer_size and "
                              f"horizon as that run, or init_buffer=false") from None
    return f"the agent in {path} and its buffer ({len(buffer)} transitions, {buffer.episodes} episodes)"
