"""E-stop sources that a stranger cannot clear: several named sources, each on its own topic, each heartbeating.

With sources ``[pendant, operator]`` and the e-stop topic ``/estop``:
  - source ``s`` publishes std_msgs/Bool on ``/estop/<s>`` (True: pressed, False: released) at least once per
    `heartbeat_timeout_s`; a source not heard for longer counts as pressed ("silent"), and so does a source not
    heard yet. Its reset requests are std_msgs/Bool True on ``<estop_reset_topic>/<s>``.
  - anyone may still stop the arm on the plain ``/estop`` (True); False there releases nothing.
  - the stop holds while any source is pressed or silent; it is cleared only by a reset from a listed source,
    accepted when every source is alive and released, and logged with that source's name.
The source is the topic, not a field in the message, so plain std_msgs/Bool works on both transports (and from
`ros2 topic pub`), and on an SROS2 graph the permissions file decides which enclave may publish on each source's
topic. Without SROS2 anyone on the domain can publish on any topic, so who is "a listed source" is a matter of
convention there: the heartbeat and the per-source topics stop accidents and strangers who do not know the
names, not an attacker (docs/formats.md, "E-stop").

Times are the receiver's monotonic clock: heartbeats need no clock agreement between hosts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

_SOURCE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")   # one ROS 2 topic-name token


class EstopConfigError(ValueError):
    pass


def parse_sources(text: str, where: str = "estop_sources") -> tuple[str, ...]:
    """'pendant, operator' -> ('pendant', 'operator'); '' -> () (no sources: the plain e-stop topic only)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    bad = [name for name in names if not _SOURCE_NAME.match(name)]
    if bad:
        raise EstopConfigError(f"{where}: source names must be [A-Za-z_][A-Za-z0-9_]* (they name topics), got {bad}")
    if len(set(names)) != len(names):
        raise EstopConfigError(f"{where}: source names repeat: {list(names)}")
    return names


@dataclass
class _Source:
    pressed: bool = True
    last_heard_s: float | None = None


class EstopSources:
    def __init__(self, sources: Sequence[str], heartbeat_timeout_s: float):
        if not sources:
            raise EstopConfigError("estop_sources: at least one source (else the plain e-stop topic alone is used)")
        if not heartbeat_timeout_s > 0:
            raise EstopConfigError(f"estop_heartbeat_timeout_s: expected > 0 s, got {heartbeat_timeout_s}")
        self.timeout_s = float(heartbeat_timeout_s)
        self._sources = {name: _Source() for name in sources}
        self._anonymous_press = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._sources)

    def heard(self, source: str, pressed: bool, now_s: float) -> None:
        state = self._sources[source]
        state.pressed, state.last_heard_s = bool(pressed), now_s

    def press_anonymous(self) -> None:
        """A press on the plain e-stop topic: anyone may stop the arm; only a listed source's reset clears it."""
        self._anonymous_press = True

    def holding(self, now_s: float) -> list[str]:
        """Why the stop holds now (empty: every source alive and released, and no unreset anonymous press)."""
        reasons = self._source_reasons(now_s)
        if self._anonymous_press:
            reasons.append("pressed on the plain e-stop topic (a listed source's reset clears it)")
        return reasons

    def reset(self, source: str, now_s: float) -> tuple[bool, str]:
        """A reset request from `source`: (accepted, why not)."""
        if source not in self._sources:
            return False, f"{source!r} is not a listed e-stop source {list(self._sources)}"
        reasons = self._source_reasons(now_s)
        if reasons:
            return False, "; ".join(reasons)
        self._anonymous_press = False
        return True, ""

    def _source_reasons(self, now_s: float) -> list[str]:
        reasons = []
        for name, state in self._sources.items():
            if state.last_heard_s is None:
                reasons.append(f"{name}: not heard yet")
            elif now_s - state.last_heard_s > self.timeout_s:
                reasons.append(f"{name}: silent for {now_s - state.last_heard_s:.2f} s (heartbeat timeout "
                               f"{self.timeout_s:g} s)")
            elif state.pressed:
                reasons.append(f"{name}: pressed")
        return reasons
