"""Log lines that cannot flood: per key, the first line goes out at once, later ones at most once per `period_s`,
each carrying how many were held back since the last one (a bad publisher at 1 kHz, or a status flapping every
control period, then costs one line per period_s instead of one per message)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class _Key:
    last_s: float
    held_back: int = 0


class ThrottledLog:
    def __init__(self, period_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        if not period_s >= 0:
            raise ValueError(f"log throttle period must be >= 0 s, got {period_s}")
        self.period_s = period_s
        self.clock = clock
        self._keys: dict[str, _Key] = {}

    def __call__(self, log: Callable[[str], None], key: str, message: str) -> bool:
        """Emit `message` through `log` unless `key` was logged less than period_s ago; True when emitted."""
        now = self.clock()
        state = self._keys.get(key)
        if state is not None and now - state.last_s < self.period_s:
            state.held_back += 1
            return False
        if state is not None and state.held_back:
            message += f" ({state.held_back} more like this in the last {now - state.last_s:.1f} s)"
        self._keys[key] = _Key(now)
        log(message)
        return True
