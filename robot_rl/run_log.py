"""A run's logs: one CSV per stream (`train.csv`, `eval.csv`) and TensorBoard events, in the run folder.
On resume, rows after the checkpoint's step are dropped so the logs read as one uninterrupted run."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from robot_rl.checkpoint import atomic_write_bytes


class RunLog:
    def __init__(self, folder: str | Path, resume_step: int | None = None, tensorboard: bool = True):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.columns: dict[str, list[str]] = {}
        for path in sorted(self.folder.glob("*.csv")):
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                rows = [r for r in reader if resume_step is not None and int(float(r["step"])) <= resume_step]
                self.columns[path.stem] = list(reader.fieldnames or [])
            self.rows[path.stem] = rows
            self._rewrite(path.stem)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.folder / "tb"), purge_step=resume_step)

    def _rewrite(self, stream: str) -> None:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns[stream], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows[stream])
        atomic_write_bytes(self.folder / f"{stream}.csv", out.getvalue().encode())

    def log(self, stream: str, step: int, metrics: dict[str, float]) -> None:
        row = {"step": step, **{k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v)
                                for k, v in metrics.items()}}
        rows = self.rows.setdefault(stream, [])
        rows.append(row)
        columns = self.columns.setdefault(stream, [])
        new = [k for k in row if k not in columns]
        path = self.folder / f"{stream}.csv"
        if new or not path.exists():
            columns.extend(new)
            self._rewrite(stream)
        else:
            with path.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=columns, extrasaction="ignore").writerow(row)
        if self.writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{stream}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
