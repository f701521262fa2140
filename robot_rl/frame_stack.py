"""Frame stacking of camera images (MoDem and TD-MPC on pixels stack the last 3 frames, so a single
observation carries motion): the last k images concatenated along channels, oldest first; an episode's first
observation repeats its first image k times. The same rule stacks recorded demonstration episodes."""
from __future__ import annotations

import gymnasium as gym
import numpy as np


def stack_frames(pixels: np.ndarray, k: int) -> np.ndarray:
    """An episode's images (T+1, C, H, W) -> (T+1, k*C, H, W), as FrameStack would have observed them."""
    if k <= 1:
        return pixels
    padded = np.concatenate([np.repeat(pixels[:1], k - 1, axis=0), pixels], axis=0)
    return np.concatenate([padded[i: i + len(pixels)] for i in range(k)], axis=1)


class FrameStack(gym.ObservationWrapper):
    """Stacks the "pixels" entry of dict observations (robot_rl.envs.DictObs); other entries pass through."""

    def __init__(self, env: gym.Env, k: int):
        super().__init__(env)
        if k < 1:
            raise ValueError(f"frame_stack={k}; expected >= 1")
        self.k = k
        space = env.observation_space["pixels"]
        c, h, w = space.shape
        self.observation_space = gym.spaces.Dict({**env.observation_space.spaces, "pixels": gym.spaces.Box(
            0, 255, (k * c, h, w), np.uint8)})
        self._frames: list[np.ndarray] = []

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._frames = [obs["pixels"]] * self.k
        return self._stacked(obs), info

    def observation(self, obs):
        self._frames = [*self._frames[1:], obs["pixels"]]
        return self._stacked(obs)

    def _stacked(self, obs):
        return {**obs, "pixels": np.concatenate(self._frames, axis=0)}
