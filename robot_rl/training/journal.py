"""The transition journal of an on-robot run: every transition on disk as it happens, so a crash of the learner
process loses nothing the robot did.

An append-only file of frames, each `MAGIC | kind (1 byte) | length (u32) | crc32 (u32) | payload`:

  kind T   a Transitions block (robot_rl/training/transitions.py, `to_bytes`), normally one step
  kind E   the end of an episode that its last T frame did not mark (a fault or a stop): JSON {"episode", "reason"}

Each frame is flushed to the OS when written (a killed process loses none) and the file is fsynced at the end of
each episode (a power cut loses at most the running episode). A frame cut short by a crash (short length or a
CRC mismatch at the end of the file) is detected and dropped on reading, and cut off before appending again.
A checkpoint records how many frames it holds (`frames`); resume re-ingests the frames after it
(`episodes_after`), closing an episode the crash cut as truncated.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from robot_rl.training.transitions import Transitions

MAGIC = b"RRJ1"
HEADER = struct.Struct("<4scII")     # magic, kind, payload length, crc32 of the payload
KINDS = (b"T", b"E")


class JournalError(ValueError):
    """A journal file that is not one (a bad frame before its end, not a torn last frame)."""


@dataclass
class Frame:
    kind: str                         # "T" | "E"
    transitions: Transitions | None   # kind T
    end: dict | None                  # kind E: {"episode": int, "reason": str}


def _scan(path: Path) -> tuple[list[tuple[bytes, bytes]], int, int]:
    """(kind, payload) of every whole frame, the byte offset after the last whole frame, and the file size."""
    data = path.read_bytes() if path.exists() else b""
    frames, offset = [], 0
    while offset < len(data):
        if len(data) - offset < HEADER.size:
            break                                  # a torn header: the crash cut the last frame
        magic, kind, length, crc = HEADER.unpack_from(data, offset)
        end = offset + HEADER.size + length
        if magic == MAGIC and kind in KINDS and end > len(data):
            break                                  # the crash cut the last frame's payload
        payload = data[offset + HEADER.size:end]
        if magic != MAGIC or kind not in KINDS or zlib.crc32(payload) != crc:
            if magic == MAGIC and end == len(data):
                break                              # the last frame, its bytes not all on the disk
            raise JournalError(f"{path}: frame {len(frames)} at byte {offset} is corrupt (magic {magic!r}, kind "
                               f"{kind!r}, crc mismatch or bad header) and is not the last one; the journal is "
                               f"damaged")
        frames.append((kind, payload))
        offset = end
    return frames, offset, len(data)


def read_frames(path: str | Path) -> list[Frame]:
    """Every whole frame of the journal at `path` (a torn last frame is dropped)."""
    out = []
    for kind, payload in _scan(Path(path))[0]:
        if kind == b"T":
            out.append(Frame("T", Transitions.from_bytes(payload), None))
        else:
            out.append(Frame("E", None, json.loads(payload.decode())))
    return out


class Journal:
    """Appends frames to `path`; a torn last frame left by a crash is cut off first."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        frames, good, size = _scan(self.path)
        self.dropped_bytes = size - good
        self.frames = len(frames)          # whole frames in the file
        self.file = open(self.path, "ab")
        if self.dropped_bytes:
            self.file.truncate(good)
            self.file.seek(good)

    def _append(self, kind: bytes, payload: bytes) -> None:
        self.file.write(HEADER.pack(MAGIC, kind, len(payload), zlib.crc32(payload)) + payload)
        self.file.flush()                  # in the OS now: a killed process loses nothing
        self.frames += 1

    def write(self, transitions: Transitions) -> None:
        self._append(b"T", transitions.to_bytes())

    def end_episode(self, episode: int, reason: str) -> None:
        """Close `episode` (its last written entry becomes its last one: truncated)."""
        self._append(b"E", json.dumps({"episode": int(episode), "reason": reason}).encode())

    def sync(self) -> None:
        """On the disk (end of each episode)."""
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        if not self.file.closed:
            self.sync()
            self.file.close()


def episodes_after(frames: list[Frame], start: int) -> Iterator[tuple[Transitions, str]]:
    """The episodes the frames from index `start` on hold, in the order they ended, each as one Transitions block
    whose last entry is marked last, with how it ended: "done" (its last entry said so), the E frame's reason, or
    "cut" (the journal stops inside it: closed as truncated). Episodes whose first entry lies before `start`
    were in the checkpoint and are skipped."""
    open_: dict[int, list[Transitions]] = {}
    order: list[int] = []
    for frame in frames[start:]:
        if frame.kind == "E":
            e = frame.end["episode"]
            if e in open_:
                yield _closed(open_.pop(e)), frame.end["reason"]
                order.remove(e)
            continue
        t = frame.transitions
        for j in range(len(t)):
            e = int(t.episode[j])
            if t.first[j]:
                open_[e] = []
                order.append(e)
            if e not in open_:
                continue                           # began before `start`: the checkpoint holds it
            open_[e].append(_row(t, j))
            if t.last[j]:
                yield Transitions.concat(open_.pop(e)), "done"
                order.remove(e)
    for e in order:
        yield _closed(open_.pop(e)), "cut"


def _row(t: Transitions, j: int) -> Transitions:
    s = slice(j, j + 1)
    return Transitions(episode=t.episode[s], first=t.first[s], obs={k: v[s] for k, v in t.obs.items()},
                       action=t.action[s], reward=t.reward[s], terminated=t.terminated[s], last=t.last[s],
                       intervention=t.intervention[s])


def _closed(rows: list[Transitions]) -> Transitions:
    block = Transitions.concat(rows)
    block.last = block.last.copy()
    block.last[-1] = True
    return block


def count_steps(frames: list[Frame]) -> int:
    """Environment steps (entries that are not an episode's reset observation) in the frames."""
    return int(sum(np.count_nonzero(~f.transitions.first) for f in frames if f.kind == "T"))
