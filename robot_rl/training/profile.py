"""Where a training step's time goes: wall-clock seconds per phase (env, act, buffer, sample, update, eval,
checkpoint, log), printed as a table by `robot-rl train ... profile=true`. On CUDA the timer synchronises at
phase boundaries when profiling, so kernel time lands in the phase that queued it."""
from __future__ import annotations

import time
from contextlib import contextmanager


class PhaseTimer:
    def __init__(self, sync=None):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.sync = sync
        self.started = time.perf_counter()

    @contextmanager
    def phase(self, name: str):
        if self.sync is not None:
            self.sync()
        t = time.perf_counter()
        try:
            yield
        finally:
            if self.sync is not None:
                self.sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
            self.calls[name] = self.calls.get(name, 0) + 1

    def table(self, env_steps: int, updates: int) -> str:
        total = time.perf_counter() - self.started
        lines = [f"{'phase':<11} {'seconds':>9} {'share':>6} {'calls':>8} {'ms/call':>9}"]
        for name, sec in sorted(self.seconds.items(), key=lambda kv: -kv[1]):
            calls = self.calls[name]
            lines.append(f"{name:<11} {sec:9.2f} {100 * sec / max(total, 1e-9):5.1f}% {calls:8d} "
                         f"{1e3 * sec / max(calls, 1):9.2f}")
        other = total - sum(self.seconds.values())
        lines.append(f"{'other':<11} {other:9.2f} {100 * other / max(total, 1e-9):5.1f}%")
        lines.append(f"{env_steps} environment steps ({env_steps / max(total, 1e-9):.1f}/s), "
                     f"{updates} updates ({updates / max(total, 1e-9):.1f}/s) in {total:.1f} s")
        return "\n".join(lines)
