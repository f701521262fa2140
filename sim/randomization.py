"""Domain randomisation: draw physical parameters uniformly within their ranges, once per episode.

The ranges are a parameters file's confidence intervals (calibration/ writes them), else the defaults below;
`select_ranges` narrows randomisation to some parameters, e.g. the action latency and joint noise a policy with
the last actions in its observation should be robust to (`ArmEnv(randomize=["action_latency", "obs_noise"])`)."""
from __future__ import annotations

from typing import Mapping, Sequence

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


def select_ranges(nominal: Mapping[str, float], identified: Mapping[str, tuple[float, float]],
                  selection: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Ranges for the parameters `selection` names, by full name ("kp/panda_joint1") or kind ("kp",
    "action_latency", "obs_noise"): the identified interval where the parameters file has one, else the default
    range. Unknown names raise (ValueError naming the known kinds)."""
    kinds = {name.split("/")[0] for name in nominal}
    unknown = sorted(set(selection) - kinds - set(nominal))
    if unknown:
        raise ValueError(f"randomize={list(selection)}: unknown parameter(s) {unknown}; known kinds {sorted(kinds)} "
                         f"(or full names such as {next(iter(nominal), '')!r})")
    chosen = [name for name in nominal if name in selection or name.split("/")[0] in selection]
    defaults = default_ranges({name: nominal[name] for name in chosen})
    return {name: identified.get(name, defaults.get(name)) for name in chosen
            if name in identified or name in defaults}


def sample_parameters(ranges: Mapping[str, tuple[float, float]], rng: np.random.Generator) -> dict[str, float]:
    """One uniform draw per parameter; integer parameters are drawn among the whole numbers in the range."""
    sample = {}
    for name, (lo, hi) in ranges.items():
        if name in INTEGER_PARAMETERS:
            sample[name] = float(rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1))
        else:
            sample[name] = float(rng.uniform(lo, hi))
    return sample
