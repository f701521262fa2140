"""What a collector hands a learner, as plain numpy data that crosses a process or network boundary as bytes.

A `Transitions` block holds replay-buffer entries in the order they happened, tagged with a global episode
index: an episode's first entry is its reset observation (action and reward zero), every later entry the
observation an action reached, the reward for it, and whether it ended the episode (terminated: a terminal
state; last: terminated or truncated). Entries of several environments interleave; the episode index keeps
them apart. `intervention` marks entries whose action a human teleoperator drove (on the robot; all False in
simulation); blocks written before the flag read back with it False.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np


@dataclass
class Transitions:
    episode: np.ndarray                   # (M,) int64 global episode index
    first: np.ndarray                     # (M,) bool: the episode's reset observation
    obs: dict[str, np.ndarray]            # modality -> (M, ...)
    action: np.ndarray                    # (M, A) float32
    reward: np.ndarray                    # (M,) float32
    terminated: np.ndarray                # (M,) bool
    last: np.ndarray                      # (M,) bool: the episode's final entry
    intervention: np.ndarray | None = None  # (M,) bool: a teleoperator drove this entry's action (None: none did)

    def __post_init__(self) -> None:
        if self.intervention is None:
            self.intervention = np.zeros(len(self.episode), dtype=bool)

    def __len__(self) -> int:
        return len(self.episode)

    @staticmethod
    def from_records(records: list[dict], obs_keys: list[str], action_dim: int) -> "Transitions":
        """Records {episode, first, obs, action, reward, terminated, last[, intervention]} -> one block."""
        def column(name: str, dtype) -> np.ndarray:
            return np.array([r[name] for r in records], dtype=dtype)
        obs = {k: np.stack([r["obs"][k] for r in records]) for k in obs_keys} if records else {}
        action = (np.stack([r["action"] for r in records]).astype(np.float32) if records
                  else np.zeros((0, action_dim), np.float32))
        return Transitions(episode=column("episode", np.int64), first=column("first", bool), obs=obs,
                           action=action, reward=column("reward", np.float32),
                           terminated=column("terminated", bool), last=column("last", bool),
                           intervention=np.array([r.get("intervention", False) for r in records], dtype=bool))

    @staticmethod
    def concat(blocks: list["Transitions"]) -> "Transitions":
        """One block of several, in order."""
        return Transitions(episode=np.concatenate([b.episode for b in blocks]),
                           first=np.concatenate([b.first for b in blocks]),
                           obs={k: np.concatenate([b.obs[k] for b in blocks]) for k in blocks[0].obs},
                           action=np.concatenate([b.action for b in blocks]),
                           reward=np.concatenate([b.reward for b in blocks]),
                           terminated=np.concatenate([b.terminated for b in blocks]),
                           last=np.concatenate([b.last for b in blocks]),
                           intervention=np.concatenate([b.intervention for b in blocks]))

    def to_bytes(self) -> bytes:
        arrays = {"episode": self.episode, "first": self.first, "action": self.action, "reward": self.reward,
                  "terminated": self.terminated, "last": self.last, "intervention": self.intervention,
                  **{f"obs.{k}": v for k, v in self.obs.items()}}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> "Transitions":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            obs = {k[4:]: z[k] for k in z.files if k.startswith("obs.")}
            return Transitions(episode=z["episode"], first=z["first"], obs=obs, action=z["action"],
                               reward=z["reward"], terminated=z["terminated"], last=z["last"],
                               intervention=z["intervention"] if "intervention" in z.files else None)


@dataclass
class EpisodeSummary:
    """One finished episode, for logs."""
    episode: int
    env: int
    steps: int
    ret: float
    success: bool
    terminated: bool
