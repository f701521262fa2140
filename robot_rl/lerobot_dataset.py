"""Demonstrations as a LeRobotDataset (codebase v3.0), written and read with the libraries that format is made of:
pyarrow for the parquet tables and PyAV for the mp4 video (docs/formats.md, "LeRobotDataset").

Why not the `lerobot` package itself: lerobot 0.4.4, the newest release for Python 3.11, pins torch<2.11,
opencv<4.13 and rerun-sdk<0.27, none of which fit this project's pinned set (constraints.txt), and its dataset
class pulls in `datasets`, torchvision and the Hub client. The layout below follows LeRobot's own sources
(lerobot/datasets/utils.py, lerobot_dataset.py, video_utils.py at v0.4.4) and is checked against a dataset that
LeRobot's own writer made (tests/robot_rl/fixtures/lerobot_panda_reach, see make_lerobot_fixture.py there):

    meta/info.json                        codebase_version, fps, robot_type, features {key: dtype, shape, names}
    meta/stats.json                       per feature min/max/mean/std/count/q01..q99 (images: per channel, /255)
    meta/tasks.parquet                    task strings (pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet   one row per episode: length, dataset_from/to_index, data and
                                          video file indices, video from/to_timestamp, stats/<feature>/<stat>
    data/chunk-000/file-000.parquet       one row per frame: observation.state, action, next.reward, next.success,
                                          next.done, timestamp, frame_index, episode_index, index, task_index
    videos/<image key>/chunk-000/file-000.mp4  every episode's frames back to back (AV1 by libsvtav1, yuv420p)

A LeRobot frame is (observation_t, action_t). A robot_rl episode of T steps has T+1 observations, so it becomes
T+1 frames: the last frame carries the final observation, its action repeats the one before (hold), its
next.reward is 0, and next.done is true only there. Reading drops the last frame's action and rewards again, so
our own datasets round-trip exactly (the video is lossy, as LeRobot's is). Our metadata (task, observation
layout, normalised actions) travels in info.json under "robot_rl", which LeRobot's reader ignores.

Datasets recorded by LeRobot on a real arm carry no such metadata: `read_lerobot` returns their joint positions
(observation.state), actions (absolute joint targets when the action names end in ".pos", per-step deltas in rad
when they end in ".delta"), the first camera's frames (from the mp4, or PNG images inside the parquet when LeRobot
recorded with use_videos=False) and the optional goal in observation.environment_state; the
conversion to a task's state and action spaces is robot_rl/recording_to_demos.py's, as for rosbag2 recordings.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_rl.demo_dataset import (DemoEpisode, DemoError, DemoMeta, atomic_folder, check_episode,
                                   meta_from_json)

CODEBASE_VERSION = "v3.0"
INFO = "meta/info.json"
STATS = "meta/stats.json"
TASKS = "meta/tasks.parquet"
EPISODES = "meta/episodes/chunk-{chunk:03d}/file-{file:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
STATE = "observation.state"
ENV_STATE = "observation.environment_state"
IMAGE = "observation.images.camera"
ACTION = "action"
INDEX_FEATURES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                  "task_index": "int64"}
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
# LeRobot's video defaults (video_utils.encode_video_frames): AV1 through SVT-AV1, a key frame every 2 frames.
VIDEO_CODEC, VIDEO_OPTIONS = "libsvtav1", {"g": "2", "crf": "30"}
FPS_TOLERANCE_S = 1e-4      # LeRobot's default tolerance_s between timestamps and frame_index / fps


def _require_libraries(where: Path) -> None:
    """pyarrow and PyAV come with the `datasets` extra; say so instead of a bare ModuleNotFoundError."""
    import importlib.util

    missing = [name for name in ("pyarrow", "av") if importlib.util.find_spec(name) is None]
    if missing:
        raise DemoError(f"{where}: LeRobotDatasets need {missing} (pip install 'robot_rl[datasets]')")


def is_lerobot_dataset(path: str | Path) -> bool:
    return (Path(path) / INFO).is_file()


def has_robot_rl_meta(path: str | Path) -> bool:
    """Written by `save_lerobot` (task metadata in info.json), not recorded by LeRobot itself."""
    return "robot_rl" in _load_info(Path(path))


# ---------------------------------------------------------------------------------------------- writing

def _vector_names(meta: DemoMeta) -> list[str]:
    """Names of the state vector's entries, from the observation layout and the joint names."""
    if not meta.obs_layout:
        return [f"state.{i}" for i in range(meta.state_dim)]
    arm = [j for j in meta.joint_names if "finger" not in j]
    names = []
    for part, size in meta.obs_layout:
        if part == "arm_qpos" and len(arm) == size:
            names += [f"{j}.pos" for j in arm]
        elif part == "arm_qvel" and len(arm) == size:
            names += [f"{j}.vel" for j in arm]
        elif size == 3:
            names += [f"{part}.{axis}" for axis in "xyz"]
        elif size == 4:
            names += [f"{part}.{axis}" for axis in "wxyz"]
        else:
            names += [part] if size == 1 else [f"{part}.{i}" for i in range(size)]
    return names


def _action_names(meta: DemoMeta) -> list[str]:
    arm = [j for j in meta.joint_names if "finger" not in j]
    if len(arm) + 1 == meta.action_dim:
        return [f"{j}.delta_normalized" for j in arm] + ["gripper.normalized"]
    return [f"action.{i}" for i in range(meta.action_dim)]


def _features(meta: DemoMeta, video_info: dict | None) -> dict:
    features: dict = {}
    if "state" in meta.obs_keys:
        features[STATE] = {"dtype": "float32", "shape": [meta.state_dim], "names": _vector_names(meta)}
    if "pixels" in meta.obs_keys:
        _, h, w = meta.pixel_shape
        features[IMAGE] = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                           "info": video_info}
    features[ACTION] = {"dtype": "float32", "shape": [meta.action_dim], "names": _action_names(meta)}
    features["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
    features["next.success"] = {"dtype": "bool", "shape": [1], "names": None}
    features["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    for key, dtype in INDEX_FEATURES.items():
        features[key] = {"dtype": dtype, "shape": [1], "names": None}
    return features


def _frames(ep: DemoEpisode) -> dict[str, np.ndarray]:
    """The T+1 LeRobot frames of one episode (see the module docstring for the last one)."""
    steps = len(ep)
    return {"action": np.concatenate([ep.action, ep.action[-1:]]).astype(np.float32),
            "next.reward": np.append(ep.reward, 0.0).astype(np.float32),
            "next.success": np.append(ep.success, ep.success[-1]).astype(bool),
            "next.done": np.arange(steps + 1) == steps}


def _stats(values: np.ndarray, image: bool = False) -> dict:
    """LeRobot's per-feature statistics: over frames, per entry (images: per channel, scaled to [0, 1])."""
    if image:  # (N, 3, H, W) uint8 -> per channel, shaped (3, 1, 1) as LeRobot's compute_stats keeps them
        x = values.astype(np.float64).transpose(1, 0, 2, 3).reshape(values.shape[1], -1) / 255.0
        reduce = lambda f: f(x, axis=1).reshape(-1, 1, 1)  # noqa: E731
        stats = {"min": reduce(np.min), "max": reduce(np.max), "mean": reduce(np.mean), "std": reduce(np.std)}
        stats.update({f"q{int(q * 100):02d}": np.quantile(x, q, axis=1).reshape(-1, 1, 1) for q in QUANTILES})
    else:
        x = values.reshape(len(values), -1)
        as_float = x.astype(np.float64)
        stats = {"min": x.min(0), "max": x.max(0), "mean": as_float.mean(0), "std": as_float.std(0)}
        stats.update({f"q{int(q * 100):02d}": np.quantile(as_float, q, axis=0) for q in QUANTILES})
    stats["count"] = np.array([len(values)])
    return stats


def _aggregate(parts: list[dict]) -> dict:
    """Dataset statistics from per-episode ones (LeRobot's aggregate_stats: count-weighted mean and variance;
    quantiles count-weighted too, as LeRobot approximates them)."""
    counts = np.array([p["count"][0] for p in parts], float)
    w = counts / counts.sum()
    shape = (-1,) + (1,) * (np.asarray(parts[0]["mean"]).ndim)
    mean = np.sum([wi * np.asarray(p["mean"], float) for wi, p in zip(w, parts)], axis=0)
    var = np.sum([wi * (np.asarray(p["std"], float) ** 2 + (np.asarray(p["mean"], float) - mean) ** 2)
                  for wi, p in zip(w, parts)], axis=0)
    out = {"min": np.min([p["min"] for p in parts], axis=0), "max": np.max([p["max"] for p in parts], axis=0),
           "mean": mean, "std": np.sqrt(var), "count": np.array([int(counts.sum())])}
    for q in QUANTILES:
        key = f"q{int(q * 100):02d}"
        out[key] = np.sum(np.asarray([p[key] for p in parts], float) * w.reshape(shape), axis=0)
    return out


def _jsonable(stats: dict) -> dict:
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


def _hf_features(features: dict) -> dict:
    """The `huggingface` schema metadata LeRobot's parquet files carry, so `datasets` reads the same types."""
    out = {}
    for key, ft in features.items():
        if ft["dtype"] == "video":
            continue
        value = {"dtype": ft["dtype"], "_type": "Value"}
        out[key] = value if ft["shape"] == [1] else {"feature": value, "length": ft["shape"][0], "_type": "List"}
    return {"info": {"features": out}}


def _write_table(path: Path, columns: dict, metadata: dict | None = None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(columns)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")


def _vector_column(values: np.ndarray, dtype: str):
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    flat = pa.array(values.reshape(-1), type=pa.from_numpy_dtype(np.dtype(dtype)))
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def _encode_video(path: Path, frames: np.ndarray, fps: int) -> None:
    """(N, H, W, 3) uint8 frames -> mp4, pts = frame index in a 1/fps time base (as LeRobot's encoder makes it)."""
    import av

    os.environ.setdefault("SVT_LOG", "1")   # SVT-AV1 prints its whole configuration to stderr otherwise
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(VIDEO_CODEC, rate=fps, options=dict(VIDEO_OPTIONS))
        stream.pix_fmt = "yuv420p"
        stream.height, stream.width = frames.shape[1:3]
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _video_info(path: Path) -> dict:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {"video.height": stream.height, "video.width": stream.width,
                "video.codec": stream.codec_context.codec.canonical_name, "video.pix_fmt": stream.pix_fmt,
                "video.is_depth_map": False, "video.fps": int(stream.base_rate), "video.channels": 3,
                "has_audio": False}


def save_lerobot(path: str | Path, meta: DemoMeta, episodes: list[DemoEpisode], overwrite: bool = False,
                 robot_type: str | None = None) -> Path:
    """Write demonstrations as a LeRobotDataset v3 folder, atomically (temp folder, then rename)."""
    path = Path(path)
    _require_libraries(path)
    for i, ep in enumerate(episodes):
        check_episode(ep, meta, f"{path} (episode {i})")
    if not episodes:
        raise DemoError(f"{path}: no episodes to write")
    fps = int(round(meta.control_hz))
    if abs(fps - meta.control_hz) > 1e-9:
        raise DemoError(f"{path}: field 'control_hz' is {meta.control_hz}; a LeRobotDataset's fps is an integer")
    if path.exists() and not overwrite:
        raise DemoError(f"{path}: already exists; choose another out= or pass overwrite=true")
    with atomic_folder(path) as tmp:
        _write(tmp, meta, episodes, fps, robot_type)
    return path


def _write(root: Path, meta: DemoMeta, episodes: list[DemoEpisode], fps: int, robot_type: str | None) -> None:
    lengths = [len(ep) + 1 for ep in episodes]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    frames = [_frames(ep) for ep in episodes]
    video_info = None
    if "pixels" in meta.obs_keys:
        video = root / VIDEO_PATH.format(video_key=IMAGE, chunk_index=0, file_index=0)
        _encode_video(video, np.concatenate([ep.pixels.transpose(0, 2, 3, 1) for ep in episodes]), fps)
        video_info = _video_info(video)
    features = _features(meta, video_info)

    data = {}
    if "state" in meta.obs_keys:
        data[STATE] = _vector_column(np.concatenate([ep.state for ep in episodes]), "float32")
    data[ACTION] = _vector_column(np.concatenate([f["action"] for f in frames]), "float32")
    for key in ("next.reward", "next.success", "next.done"):
        data[key] = np.concatenate([f[key] for f in frames])
    data["timestamp"] = np.concatenate([np.arange(n) / fps for n in lengths]).astype(np.float32)
    data["frame_index"] = np.concatenate([np.arange(n) for n in lengths]).astype(np.int64)
    data["episode_index"] = np.repeat(np.arange(len(episodes)), lengths).astype(np.int64)
    data["index"] = np.arange(sum(lengths), dtype=np.int64)
    data["task_index"] = np.zeros(sum(lengths), np.int64)
    hf = json.dumps(_hf_features(features)).encode()
    _write_table(root / DATA_PATH.format(chunk_index=0, file_index=0), data, {b"huggingface": hf})

    episode_stats = []
    for i, (ep, f) in enumerate(zip(episodes, frames)):
        n = lengths[i]
        per = {ACTION: _stats(f["action"]), **{k: _stats(f[k]) for k in ("next.reward", "next.success", "next.done")}}
        if "state" in meta.obs_keys:
            per[STATE] = _stats(ep.state)
        if "pixels" in meta.obs_keys:
            per[IMAGE] = _stats(ep.pixels, image=True)
        per["timestamp"] = _stats((np.arange(n) / fps).astype(np.float32))
        per["frame_index"] = _stats(np.arange(n))
        per["episode_index"] = _stats(np.full(n, i))
        per["index"] = _stats(np.arange(starts[i], starts[i] + n))
        per["task_index"] = _stats(np.zeros(n, np.int64))
        episode_stats.append(per)

    import pyarrow as pa

    rows: dict[str, list] = {"episode_index": list(range(len(episodes))),
                             "tasks": [[meta.task] for _ in episodes], "length": lengths,
                             "data/chunk_index": [0] * len(episodes), "data/file_index": [0] * len(episodes),
                             "dataset_from_index": starts.tolist(),
                             "dataset_to_index": (starts + np.array(lengths)).tolist()}
    if "pixels" in meta.obs_keys:
        rows[f"videos/{IMAGE}/chunk_index"] = [0] * len(episodes)
        rows[f"videos/{IMAGE}/file_index"] = [0] * len(episodes)
        rows[f"videos/{IMAGE}/from_timestamp"] = (starts / fps).tolist()
        rows[f"videos/{IMAGE}/to_timestamp"] = ((starts + np.array(lengths)) / fps).tolist()
    for key in episode_stats[0]:
        for stat in episode_stats[0][key]:
            rows[f"stats/{key}/{stat}"] = [np.asarray(s[key][stat]).tolist() for s in episode_stats]
    rows["meta/episodes/chunk_index"] = [0] * len(episodes)
    rows["meta/episodes/file_index"] = [0] * len(episodes)
    _write_table(root / EPISODES.format(chunk=0, file=0), {k: pa.array(v) for k, v in rows.items()})

    # tasks.parquet is a pandas frame indexed by the task string; the pandas metadata lets pd.read_parquet
    # (LeRobot's load_tasks) restore that index.
    pandas_meta = {"index_columns": ["__index_level_0__"], "column_indexes": [
        {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "str",
         "metadata": {"encoding": "UTF-8"}}], "columns": [
        {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
         "metadata": None},
        {"name": None, "field_name": "__index_level_0__", "pandas_type": "object", "numpy_type": "str",
         "metadata": None}], "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}}
    _write_table(root / TASKS, {"task_index": pa.array([0], pa.int64()),
                                "__index_level_0__": pa.array([meta.task], pa.large_string())},
                 {b"pandas": json.dumps(pandas_meta).encode()})

    stats = {key: _aggregate([s[key] for s in episode_stats]) for key in episode_stats[0]}
    _atomic_json(root / STATS, _jsonable(stats))
    info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": len(episodes),
            "total_frames": int(sum(lengths)), "total_tasks": 1, "chunks_size": 1000,
            "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": fps,
            "splits": {"train": f"0:{len(episodes)}"}, "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if "pixels" in meta.obs_keys else None, "features": features,
            "robot_rl": meta.as_json()}
    _atomic_json(root / INFO, info)


def _atomic_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=4))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- reading

@dataclass
class LeRobotEpisode:
    """One episode's frames as LeRobot stores them: N frames of (observation_t, action_t)."""
    state: np.ndarray | None            # (N, S) observation.state
    action: np.ndarray                  # (N, A)
    images: np.ndarray | None           # (N, H, W, 3) uint8 of the first camera
    env_state: np.ndarray | None        # (N, E) observation.environment_state
    reward: np.ndarray | None           # (N,) next.reward
    success: np.ndarray | None          # (N,) next.success
    timestamp: np.ndarray               # (N,) s


@dataclass
class LeRobotData:
    root: Path
    info: dict
    fps: int
    episodes: list[LeRobotEpisode]
    state_names: list[str] = field(default_factory=list)
    action_names: list[str] = field(default_factory=list)
    env_state_names: list[str] = field(default_factory=list)
    camera: str | None = None


def _load_info(root: Path) -> dict:
    path = root / INFO
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise DemoError(f"{path}: missing; not a LeRobotDataset folder") from None
    except json.JSONDecodeError as err:
        raise DemoError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(info, dict):
        raise DemoError(f"{path}: expected a JSON object")
    if info.get("codebase_version") != CODEBASE_VERSION:
        raise DemoError(f"{path}: field 'codebase_version' is {info.get('codebase_version')!r}; this reader knows "
                        f"{CODEBASE_VERSION!r} (convert older datasets with LeRobot's convert_dataset_v21_to_v30)")
    fps = info.get("fps")
    if not (isinstance(fps, int) and fps > 0):
        raise DemoError(f"{path}: field 'fps' is {fps!r}; expected a positive integer")
    features = info.get("features")
    if not isinstance(features, dict):
        raise DemoError(f"{path}: field 'features' missing or not an object")
    for key, ft in features.items():
        if not (isinstance(ft, dict) and "dtype" in ft and isinstance(ft.get("shape"), list)):
            raise DemoError(f"{path}: field 'features.{key}' needs 'dtype' and a 'shape' list; it is {ft!r}")
        names = ft.get("names")
        if ft["dtype"] not in ("video", "image") and isinstance(names, list) and len(ft["shape"]) == 1 \
                and len(names) != ft["shape"][0]:
            raise DemoError(f"{path}: field 'features.{key}.names' lists {len(names)} names; its shape is "
                            f"{ft['shape']}")
    if ACTION not in features:
        raise DemoError(f"{path}: feature 'action' missing; it has {sorted(features)}")
    return info


def _read_parquets(root: Path, folder: str, what: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((root / folder).glob("chunk-*/file-*.parquet"))
    if not files:
        raise DemoError(f"{root / folder}: no chunk-*/file-*.parquet files ({what})")
    tables = []
    for file in files:
        try:
            tables.append(pq.read_table(file))
        except (OSError, pa.ArrowInvalid) as err:
            raise DemoError(f"{file}: unreadable parquet ({err})") from None
    return files, pa.concat_tables(tables, promote_options="default")


def _column(table, key: str, file: Path, width: int | None, dtype) -> np.ndarray:
    if key not in table.column_names:
        raise DemoError(f"{file}: column {key!r} missing (meta/info.json lists it as a feature); it has "
                        f"{table.column_names}")
    column = table.column(key).combine_chunks()
    if width is None:
        values = column.to_numpy(zero_copy_only=False)
        if values.dtype == object:
            raise DemoError(f"{file}: column {key!r} holds lists; meta/info.json gives it shape [1]")
        return values.astype(dtype)
    try:
        values = np.stack(column.to_numpy(zero_copy_only=False)).astype(dtype)
    except ValueError:
        raise DemoError(f"{file}: column {key!r} has rows of different lengths; meta/info.json gives "
                        f"shape [{width}]") from None
    if values.ndim != 2 or values.shape[1] != width:
        raise DemoError(f"{file}: column {key!r} has {values.shape[1:] or 'scalar'} values per frame; "
                        f"meta/info.json gives shape [{width}]")
    return values


def _decode_video(path: Path, fps: int) -> dict[int, np.ndarray]:
    """Frame number (round(t * fps)) -> (H, W, 3) uint8 image, for every frame in an mp4."""
    import av

    try:
        container = av.open(str(path))
    except (FileNotFoundError, av.error.FFmpegError) as err:
        raise DemoError(f"{path}: unreadable video ({err})") from None
    with container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.base_rate
        if rate is not None and abs(float(rate) - fps) > 1e-3:
            raise DemoError(f"{path}: video runs at {float(rate):g} fps; meta/info.json field 'fps' is {fps}")
        frames = {}
        try:
            for frame in container.decode(stream):
                frames[int(round(float(frame.pts * frame.time_base) * fps))] = frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as err:
            raise DemoError(f"{path}: video decoding failed ({err})") from None
    return frames


def read_lerobot(path: str | Path, max_episodes: int = 0) -> LeRobotData:
    """Read and check a LeRobotDataset v3 folder (the first `max_episodes` episodes; 0: all)."""
    root = Path(path)
    if not root.is_dir():
        raise DemoError(f"{root}: LeRobotDataset folder not found")
    _require_libraries(root)
    import pyarrow as pa
    info = _load_info(root)
    fps, features = info["fps"], info["features"]
    where = root / INFO
    ep_files, episodes = _read_parquets(root, "meta/episodes", "episode metadata")
    for key in ("episode_index", "length", "dataset_from_index", "dataset_to_index"):
        if key not in episodes.column_names:
            raise DemoError(f"{ep_files[0]}: column {key!r} missing; it has {episodes.column_names}")
    rows = episodes.select([c for c in episodes.column_names if not c.startswith("stats/")]).to_pylist()
    rows.sort(key=lambda r: r["episode_index"])
    if info.get("total_episodes") not in (None, len(rows)):
        raise DemoError(f"{where}: field 'total_episodes' is {info['total_episodes']}; meta/episodes holds "
                        f"{len(rows)} episodes")
    if max_episodes > 0:
        rows = rows[:max_episodes]
    data_files, data = _read_parquets(root, "data", "frames")
    data_file = data_files[0] if len(data_files) == 1 else root / "data"
    vector = lambda key: features[key]["shape"][0] if features[key]["shape"] != [1] else None  # noqa: E731
    index = _column(data, "index", data_file, None, np.int64)
    order = np.argsort(index, kind="stable")
    data = data.take(pa.array(order))
    index = index[order]
    columns = {"action": _column(data, ACTION, data_file, vector(ACTION), np.float32),
               "timestamp": _column(data, "timestamp", data_file, None, np.float64),
               "episode_index": _column(data, "episode_index", data_file, None, np.int64)}
    for key, dtype in ((STATE, np.float32), (ENV_STATE, np.float32), ("next.reward", np.float32),
                       ("next.success", bool)):
        if key in features:
            columns[key] = _column(data, key, data_file, vector(key), dtype)
    cameras = [k for k, ft in features.items() if ft["dtype"] in ("video", "image")]
    camera = cameras[0] if cameras else None     # the first camera (robot_rl policies see one)
    if camera is not None and features[camera]["dtype"] == "image" and camera not in data.column_names:
        raise DemoError(f"{data_file}: column {camera!r} missing (meta/info.json lists it as an image feature)")
    videos: dict[tuple[int, int], dict[int, np.ndarray]] = {}
    out = []
    for row in rows:
        e, n = row["episode_index"], row["length"]
        lo = int(np.searchsorted(index, row["dataset_from_index"]))
        hi = int(np.searchsorted(index, row["dataset_to_index"]))
        if hi - lo != n or row["dataset_to_index"] - row["dataset_from_index"] != n:
            raise DemoError(f"{ep_files[0]}: episode {e} has length {n} but {hi - lo} frames in {data_file} "
                            f"(index {row['dataset_from_index']}..{row['dataset_to_index']})")
        if np.any(columns["episode_index"][lo:hi] != e):
            raise DemoError(f"{data_file}: frames {row['dataset_from_index']}..{row['dataset_to_index']} should "
                            f"belong to episode {e} (column 'episode_index')")
        stamps = columns["timestamp"][lo:hi]
        expected = stamps[0] + np.arange(n) / fps
        if np.max(np.abs(stamps - expected)) > FPS_TOLERANCE_S + 1e-6:
            k = int(np.argmax(np.abs(stamps - expected)))
            step = float(np.median(np.diff(stamps))) if n > 1 else float("nan")
            raise DemoError(f"{data_file}: column 'timestamp' of episode {e} steps {step:.4f} s (frame {k} at "
                            f"{stamps[k]:.4f} s); meta/info.json field 'fps' is {fps} (expected steps of "
                            f"{1 / fps:.4f} s)")
        images, source = None, data_file
        if camera is not None and features[camera]["dtype"] == "video":
            images, source = _video_frames(root, info, row, camera, stamps, videos, ep_files[0])
        elif camera is not None:
            images = _parquet_images(root, data.column(camera).slice(lo, n).to_pylist(), data_file, camera)
        if images is not None:
            shape, axes = features[camera]["shape"], features[camera].get("names") or ["height", "width", "c"]
            h, w = (shape[1], shape[2]) if axes[0] in ("channel", "channels") else (shape[0], shape[1])
            if images.shape[1:3] != (h, w):
                raise DemoError(f"{source}: frames are {images.shape[2]}x{images.shape[1]}; meta/info.json field "
                                f"'features.{camera}.shape' says {w}x{h}")
        out.append(LeRobotEpisode(
            state=columns[STATE][lo:hi] if STATE in columns else None, action=columns["action"][lo:hi],
            images=images, env_state=columns[ENV_STATE][lo:hi] if ENV_STATE in columns else None,
            reward=columns["next.reward"][lo:hi] if "next.reward" in columns else None,
            success=columns["next.success"][lo:hi] if "next.success" in columns else None, timestamp=stamps))
    names = lambda key: list(features.get(key, {}).get("names") or [])  # noqa: E731
    return LeRobotData(root=root, info=info, fps=fps, episodes=out, state_names=names(STATE),
                       action_names=names(ACTION), env_state_names=names(ENV_STATE), camera=camera)


def _video_frames(root: Path, info: dict, row: dict, camera: str, stamps: np.ndarray,
                  videos: dict, episodes_file: Path) -> tuple[np.ndarray, Path]:
    """One episode's frames out of the mp4 that holds them, by its from_timestamp and the frame timestamps."""
    fps, e = info["fps"], row["episode_index"]
    chunk, file = row.get(f"videos/{camera}/chunk_index"), row.get(f"videos/{camera}/file_index")
    start = row.get(f"videos/{camera}/from_timestamp")
    if chunk is None or file is None or start is None:
        raise DemoError(f"{episodes_file}: columns 'videos/{camera}/...' missing for episode {e}")
    video = root / info.get("video_path", VIDEO_PATH).format(video_key=camera, chunk_index=chunk, file_index=file)
    if (chunk, file) not in videos:
        videos[(chunk, file)] = _decode_video(video, fps)
    decoded = videos[(chunk, file)]
    first = int(round(start * fps))
    numbers = [first + int(round(t * fps)) for t in stamps - stamps[0]]
    missing = [k for k in numbers if k not in decoded]
    if missing:
        raise DemoError(f"{video}: no frame at {missing[0] / fps:.3f} s for episode {e} ({len(decoded)} frames "
                        f"decoded)")
    return np.stack([decoded[k] for k in numbers]), video


def _parquet_images(root: Path, cells: list, data_file: Path, camera: str) -> np.ndarray:
    """An image feature (LeRobot's use_videos=False): PNG/JPEG bytes in the parquet ({bytes, path}), decoded
    losslessly with PyAV; a cell without bytes points at a file under the dataset folder."""
    import io

    import av

    frames = []
    for k, cell in enumerate(cells):
        data = (cell or {}).get("bytes")
        if data is None and (cell or {}).get("path"):
            try:
                data = (root / cell["path"]).read_bytes()
            except OSError as err:
                raise DemoError(f"{data_file}: column {camera!r} row {k}: image file unreadable ({err})") from None
        if data is None:
            raise DemoError(f"{data_file}: column {camera!r} row {k}: no image bytes or path")
        try:
            with av.open(io.BytesIO(data), format="image2pipe") as container:
                frames.append(next(container.decode(video=0)).to_ndarray(format="rgb24"))
        except (av.error.FFmpegError, StopIteration) as err:
            raise DemoError(f"{data_file}: column {camera!r} row {k}: undecodable image ({err})") from None
    return np.stack(frames)


def load_lerobot(path: str | Path, max_episodes: int = 0) -> tuple[DemoMeta, list[DemoEpisode]]:
    """A LeRobotDataset written by `save_lerobot` (it carries our metadata) as demonstrations."""
    data = read_lerobot(path, max_episodes)
    where = Path(path) / INFO
    if "robot_rl" not in data.info:
        raise DemoError(f"{where}: recorded by LeRobot (robot_type {data.info.get('robot_type')!r}) without "
                        f"robot_rl's task metadata; convert it for a task first: robot-rl demos lerobot={path} "
                        f"task=<task> out=<folder> (robot_rl/recording_to_demos.py)")
    meta = meta_from_json(data.info["robot_rl"], where)
    if round(meta.control_hz) != data.fps:
        raise DemoError(f"{where}: field 'fps' is {data.fps}; field 'robot_rl.control_hz' is {meta.control_hz}")
    if "state" in meta.obs_keys and data.episodes and data.episodes[0].state is None:
        raise DemoError(f"{where}: feature {STATE!r} missing; field 'robot_rl.obs_keys' lists 'state'")
    if "pixels" in meta.obs_keys and data.camera is None:
        raise DemoError(f"{where}: no video feature; field 'robot_rl.obs_keys' lists 'pixels'")
    episodes = []
    for i, ep in enumerate(data.episodes):
        if ep.reward is None or ep.success is None:
            raise DemoError(f"{where}: features 'next.reward' and 'next.success' are needed for our demos")
        episode = DemoEpisode(action=ep.action[:-1], reward=ep.reward[:-1], success=ep.success[:-1],
                              state=ep.state if "state" in meta.obs_keys else None,
                              pixels=np.ascontiguousarray(ep.images.transpose(0, 3, 1, 2))
                              if "pixels" in meta.obs_keys else None)
        check_episode(episode, meta, f"{Path(path)} (episode {i})")
        episodes.append(episode)
    return meta, episodes
