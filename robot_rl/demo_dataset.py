"""The demonstrations format (docs/formats.md, "Demonstrations"): a folder with `meta.json` and one
`episode_NNNNN.npz` per episode, or a LeRobotDataset v3 folder (robot_rl/lerobot_dataset.py; `load_demos` reads
either). Written atomically as a whole (a temp folder beside the target, then rename),
read back with every array checked, and matched against the environment a run trains on, so a wrong task,
observation layout or action size is refused before any learning starts.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "robot_rl.demos"
VERSION = 1
OBS_KEYS = ("state", "pixels")


class DemoError(ValueError):
    """Demonstrations that cannot be used: names the file, the field and what was expected."""


@dataclass
class DemoMeta:
    task: str
    obs_keys: list[str]
    state_dim: int | None
    pixel_shape: list[int] | None
    action_dim: int
    control_hz: float
    joint_names: list[str] = field(default_factory=list)
    source: str = "scripted-expert"
    obs_layout: list[list] | None = None   # [[name, size], ...] of the state vector, when known

    def as_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, **asdict(self)}


@dataclass
class DemoEpisode:
    """state (T+1, D) float32, pixels (T+1, 3, H, W) uint8 (or None), action (T, A), reward (T,), success (T,)."""
    action: np.ndarray
    reward: np.ndarray
    success: np.ndarray
    state: np.ndarray | None = None
    pixels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.action)

    def obs(self, keys: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in keys}


def _fsync_write(path: Path, write) -> None:
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """A temporary folder beside `path` to fill; when the block ends it takes `path`'s place (an old folder is
    swapped out only once the new one is complete). On any error nothing is left and `path` is unchanged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the finished folder gets the usual permissions
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_demos(path: str | Path, meta: DemoMeta, episodes: list[DemoEpisode], overwrite: bool = False) -> Path:
    """Write a whole demonstrations folder atomically; refuses an existing folder unless `overwrite`."""
    path = Path(path)
    for i, ep in enumerate(episodes):
        check_episode(ep, meta, f"{path} (episode {i})")
    if path.exists() and not overwrite:
        raise DemoError(f"{path}: already exists; choose another out= or pass overwrite=true")
    with atomic_folder(path) as tmp:
        for i, ep in enumerate(episodes):
            arrays = {"action": ep.action.astype(np.float32), "reward": ep.reward.astype(np.float32),
                      "success": ep.success.astype(bool)}
            for key in meta.obs_keys:
                arrays[key] = getattr(ep, key)
            _fsync_write(tmp / f"episode_{i:05d}.npz", lambda f, a=arrays: np.savez_compressed(f, **a))
        _fsync_write(tmp / "meta.json", lambda f: f.write(json.dumps(meta.as_json(), indent=1).encode()))
    return path


def meta_from_json(raw: object, where: Path) -> DemoMeta:
    if not isinstance(raw, dict):
        raise DemoError(f"{where}: expected a JSON object")
    if raw.get("format") != FORMAT:
        raise DemoError(f"{where}: field 'format' is {raw.get('format')!r}; expected {FORMAT!r}")
    if raw.get("version") != VERSION:
        raise DemoError(f"{where}: field 'version' is {raw.get('version')!r}; this reader knows version {VERSION}")
    for key in ("task", "obs_keys", "action_dim", "control_hz"):
        if key not in raw:
            raise DemoError(f"{where}: field {key!r} missing")
    keys = raw["obs_keys"]
    if not isinstance(keys, list) or not keys or any(k not in OBS_KEYS for k in keys) or len(set(keys)) != len(keys):
        raise DemoError(f"{where}: field 'obs_keys' is {keys!r}; expected a non-empty list of distinct {OBS_KEYS}")
    if "state" in keys and not (isinstance(raw.get("state_dim"), int) and raw["state_dim"] > 0):
        raise DemoError(f"{where}: field 'state_dim' is {raw.get('state_dim')!r}; expected a positive integer")
    shape = raw.get("pixel_shape")
    if "pixels" in keys and not (isinstance(shape, list) and len(shape) == 3 and all(
            isinstance(s, int) and s > 0 for s in shape)):
        raise DemoError(f"{where}: field 'pixel_shape' is {shape!r}; expected [3, H, W]")
    if not (isinstance(raw["action_dim"], int) and raw["action_dim"] > 0):
        raise DemoError(f"{where}: field 'action_dim' is {raw['action_dim']!r}; expected a positive integer")
    known = {f for f in DemoMeta.__dataclass_fields__}
    return DemoMeta(**{k: v for k, v in raw.items() if k in known})


def check_episode(ep: DemoEpisode, meta: DemoMeta, where: str) -> None:
    """Shapes, dtypes and finiteness of one episode against the meta data."""
    steps = len(ep.action) if ep.action is not None else -1
    if ep.action is None or ep.action.ndim != 2 or ep.action.shape[1] != meta.action_dim or steps < 1:
        raise DemoError(f"{where}: array 'action' has shape {getattr(ep.action, 'shape', None)}; "
                        f"expected (T >= 1, {meta.action_dim})")
    expected = {"reward": (steps,), "success": (steps,)}
    if "state" in meta.obs_keys:
        expected["state"] = (steps + 1, meta.state_dim)
    if "pixels" in meta.obs_keys:
        expected["pixels"] = (steps + 1, *meta.pixel_shape)
    for key, shape in expected.items():
        value = getattr(ep, key)
        if value is None:
            raise DemoError(f"{where}: array {key!r} missing (meta.json lists obs_keys {meta.obs_keys})")
        if tuple(value.shape) != shape:
            raise DemoError(f"{where}: array {key!r} has shape {tuple(value.shape)}; expected {shape}")
    if ep.pixels is not None and "pixels" in meta.obs_keys and ep.pixels.dtype != np.uint8:
        raise DemoError(f"{where}: array 'pixels' has dtype {ep.pixels.dtype}; expected uint8")
    for key in ("action", "reward", "state"):
        value = getattr(ep, key)
        if value is not None and not np.all(np.isfinite(value)):
            bad = np.argwhere(~np.isfinite(value))[0]
            raise DemoError(f"{where}: array {key!r} has a non-finite value at index {tuple(int(i) for i in bad)}")
    if np.any(np.abs(ep.action) > 1.0 + 1e-6):
        raise DemoError(f"{where}: array 'action' has values outside [-1, 1] (max |a| = "
                        f"{float(np.abs(ep.action).max()):.3f}); expected normalised actions")


def load_demos(path: str | Path, max_episodes: int = 0, task: str | None = None
               ) -> tuple[DemoMeta, list[DemoEpisode]]:
    """Read and check a demonstrations folder (the first `max_episodes` episodes; 0: all): our own format or a
    LeRobotDataset. A LeRobotDataset recorded by LeRobot on a real arm (no robot_rl metadata) is converted for
    `task` (robot_rl/recording_to_demos.py), which must then be given."""
    path = Path(path)
    from robot_rl.lerobot_dataset import is_lerobot_dataset

    if is_lerobot_dataset(path):
        from robot_rl.lerobot_dataset import has_robot_rl_meta, load_lerobot

        if task is not None and not has_robot_rl_meta(path):
            from robot_rl.recording_to_demos import convert_lerobot

            return convert_lerobot(path, task, max_episodes=max_episodes)
        return load_lerobot(path, max_episodes)
    meta_path = path / "meta.json"
    if not path.is_dir():
        raise DemoError(f"{path}: demonstrations folder not found")
    try:
        meta = meta_from_json(json.loads(meta_path.read_text()), meta_path)
    except FileNotFoundError:
        raise DemoError(f"{meta_path}: missing; not a demonstrations folder written by robot-rl demos") from None
    except json.JSONDecodeError as err:
        raise DemoError(f"{meta_path}: not valid JSON ({err})") from None
    files = sorted(path.glob("episode_*.npz"))
    if not files:
        raise DemoError(f"{path}: no episode_*.npz files")
    if max_episodes > 0:
        files = files[:max_episodes]
    episodes = []
    for file in files:
        try:
            with np.load(file, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise DemoError(f"{file}: unreadable or truncated npz ({err})") from None
        for key in ("action", "reward", "success", *meta.obs_keys):
            if key not in arrays:
                raise DemoError(f"{file}: array {key!r} missing; it holds {sorted(arrays)}")
        ep = DemoEpisode(action=arrays["action"].astype(np.float32), reward=arrays["reward"].astype(np.float32),
                         success=arrays["success"].astype(bool),
                         state=arrays["state"].astype(np.float32) if "state" in meta.obs_keys else None,
                         pixels=arrays.get("pixels") if "pixels" in meta.obs_keys else None)
        check_episode(ep, meta, str(file))
        episodes.append(ep)
    return meta, episodes


def check_compatible(meta: DemoMeta, where: str | Path, task: str, obs_spec: dict[str, tuple[int, ...]],
                     action_dim: int, obs_layout: list[tuple[str, int]] | None = None) -> None:
    """Refuse demonstrations recorded for another task, observation layout or action size than the run's."""
    if meta.task != task:
        raise DemoError(f"{where}: demonstrations are for task {meta.task!r}; this run trains task {task!r}")
    if meta.action_dim != action_dim:
        raise DemoError(f"{where}: field 'action_dim' is {meta.action_dim}; task {task!r} has {action_dim}")
    for key, shape in obs_spec.items():
        if key not in meta.obs_keys:
            raise DemoError(f"{where}: field 'obs_keys' is {meta.obs_keys}; the run observes {key!r} too "
                            f"(collect demos with obs=state+pixels)")
        if key == "state" and (meta.state_dim,) != tuple(shape):
            raise DemoError(f"{where}: field 'state_dim' is {meta.state_dim}; task {task!r} has state {tuple(shape)}")
        if key == "pixels" and (tuple(meta.pixel_shape[-2:]) != tuple(shape[-2:]) or shape[0] % meta.pixel_shape[0]):
            raise DemoError(f"{where}: field 'pixel_shape' is {meta.pixel_shape}; the run's camera gives "
                            f"{list(shape)} (pass the same render size)")
    if obs_layout is not None and meta.obs_layout is not None and "state" in obs_spec:
        if [list(x) for x in meta.obs_layout] != [list(x) for x in obs_layout]:
            raise DemoError(f"{where}: field 'obs_layout' is {meta.obs_layout}; the run's state layout is "
                            f"{[list(x) for x in obs_layout]}")
