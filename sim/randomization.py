"""Domain randomisation: draw physical parameters uniformly within their ranges, once per episode."""
from __future__ import annotations

from typing import Mapping

import numpy as np

# Used when randomisation is asked for without a parameters file carrying ci ranges: relative ranges around the
# nominal values (a factor on the nominal), wide enough to cover an unidentified robot of the same model.
DEFAULT_RELATIVE_RANGES = {"damping": (0.5, 2.0), "armature": (0.7, 1.3), "frictionloss": (0.0, 1.0),
                           "kp": (0.8, 1.2), "kv": (0.8, 1.2)}
DEFAULT_ABSOLUTE_RANGES = {"payload_mass": (0.0, 0.3), "action_latency": (0.0, 1.0), "obs_noise": (0.0, 0.002),
                           "frictionloss": (0.0, 0.3)}
INTEGER_PARAMETERS = ("action_latency",)


def default_ranges(nominal: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """Ranges for every parameter from its nominal value (relative kinds) or a fixed range."""
    ranges = {}
    for name, value in nominal.items():
        kind = name.split("/")[0]
        if kind in DEFAULT_ABSOLUTE_RANGES and (value == 0.0 or kind not in DEFAULT_RELATIVE_RANGES):
            ranges[name] = DEFAULT_ABSOLUTE_RANGES[kind]
        elif kind in DEFAULT_RELATIVE_RANGES:
            lo, hi = DEFAULT_RELATIVE_RANGES[kind]
            ranges[name] = (lo * value, hi * value)
    return ranges


def sample_parameters(ranges: Mapping[str, tuple[float, float]], rng: np.random.Generator) -> dict[str, float]:
    """One uniform draw per parameter; integer parameters are drawn among the whole numbers in the range."""
    sample = {}
    for name, (lo, hi) in ranges.items():
        if name in INTEGER_PARAMETERS:
            sample[name] = float(rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1))
        else:
            sample[name] = float(rng.uniform(lo, hi))
    return sample
