"""Robot parameters file (docs/formats.md, "Robot parameters"): the single way physical parameters enter sim/.

calibration/ writes it, `sim.env` applies it (`params=` keyword), domain randomisation draws from its
confidence intervals.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol

import yaml

FORMAT = "robot_rl.robot_params"
VERSION = 1
# Parameters the environment (not the engine) owns.
ENV_PARAMETERS = ("action_latency", "obs_noise")


class ParamsError(ValueError):
    pass


class HasParameters(Protocol):
    def parameter_names(self) -> list[str]: ...
    def get_parameter(self, name: str) -> float: ...
    def set_parameter(self, name: str, value: float) -> None: ...


@dataclass(frozen=True)
class Parameter:
    value: float
    ci: tuple[float, float] | None = None   # 95 % confidence interval; the randomisation range


@dataclass
class RobotParams:
    robot: str
    parameters: dict[str, Parameter] = field(default_factory=dict)
    source: str = "<memory>"                 # file name (or description) for error messages

    def values(self) -> dict[str, float]:
        return {name: p.value for name, p in self.parameters.items()}


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ParamsError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def params_from_dict(raw: Any, source: str = "<dict>") -> RobotParams:
    """Validate the file's structure (format, version, robot, parameters with value and optional ci)."""
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{source}: expected a mapping with keys format, version, robot, parameters; "
                          f"got {type(raw).__name__}")
    if raw.get("format") != FORMAT:
        raise ParamsError(f"{source}: field 'format' must be {FORMAT!r}, got {raw.get('format')!r}")
    if raw.get("version") != VERSION:
        raise ParamsError(f"{source}: field 'version' must be {VERSION}, got {raw.get('version')!r}")
    robot = raw.get("robot")
    if not isinstance(robot, str) or not robot:
        raise ParamsError(f"{source}: field 'robot' must be a robot config name, got {robot!r}")
    unknown = sorted(set(raw) - {"format", "version", "robot", "parameters"})
    if unknown:
        raise ParamsError(f"{source}: unknown top-level field(s) {unknown}")
    entries = raw.get("parameters")
    if not isinstance(entries, Mapping):
        raise ParamsError(f"{source}: field 'parameters' must be a mapping of name -> {{value, ci}}, "
                          f"got {type(entries).__name__}")
    parameters = {}
    for name, entry in entries.items():
        where = f"{source}: parameters.{name}"
        if not isinstance(entry, Mapping) or "value" not in entry:
            raise ParamsError(f"{where}: expected a mapping with a 'value' (and optional 'ci'), got {entry!r}")
        extra = sorted(set(entry) - {"value", "ci"})
        if extra:
            raise ParamsError(f"{where}: unknown field(s) {extra}; expected 'value' and optional 'ci'")
        value = _number(entry["value"], f"{where}.value")
        ci = None
        if entry.get("ci") is not None:
            raw_ci = entry["ci"]
            if not isinstance(raw_ci, (list, tuple)) or len(raw_ci) != 2:
                raise ParamsError(f"{where}.ci: expected [low, high], got {raw_ci!r}")
            lo, hi = (_number(v, f"{where}.ci") for v in raw_ci)
            if not lo <= value <= hi:
                raise ParamsError(f"{where}.ci: expected low <= value <= high, got [{lo}, {hi}] with value {value}")
            ci = (lo, hi)
        if name == "action_latency" and (value != int(value) or value < 0):
            raise ParamsError(f"{where}.value: action_latency is a whole number of control steps >= 0, "
                              f"got {value}")
        if value < 0 or (ci is not None and ci[0] < 0):
            raise ParamsError(f"{where}: physical parameters are >= 0, got value {value}, ci {ci}")
        parameters[str(name)] = Parameter(value, ci)
    return RobotParams(robot=robot, parameters=parameters, source=source)


def load_params(path: str | Path) -> RobotParams:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: robot parameters file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML/JSON: {e}") from e
    return params_from_dict(raw, source=str(path))


def params_to_dict(params: RobotParams) -> dict[str, Any]:
    entries = {}
    for name, p in params.parameters.items():
        entry: dict[str, Any] = {"value": p.value}
        if p.ci is not None:
            entry["ci"] = [p.ci[0], p.ci[1]]
        entries[name] = entry
    return {"format": FORMAT, "version": VERSION, "robot": params.robot, "parameters": entries}


def save_params(params: RobotParams, path: str | Path) -> None:
    """Write atomically: temp file in the same folder, fsync, os.replace."""
    path = Path(path)
    text = yaml.safe_dump(params_to_dict(params), sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def as_params(params: "RobotParams | Mapping | str | Path", robot: str) -> RobotParams:
    """A parameters file path, a dict in the file's structure, or a flat {name: value} dict."""
    if isinstance(params, RobotParams):
        return params
    if isinstance(params, (str, Path)):
        return load_params(params)
    if isinstance(params, Mapping) and "format" not in params:
        return params_from_dict({"format": FORMAT, "version": VERSION, "robot": robot,
                                 "parameters": {k: {"value": v} for k, v in params.items()}}, "<params dict>")
    return params_from_dict(params, "<params dict>")


def check_names(params: RobotParams, target: HasParameters, robot: str | None = None) -> None:
    known = set(target.parameter_names())
    unknown = sorted(set(params.parameters) - known)
    if unknown:
        raise ParamsError(f"{params.source}: unknown parameter name(s) {unknown}; known: {sorted(known)}")
    if robot is not None and params.robot != robot:
        raise ParamsError(f"{params.source}: field 'robot' is {params.robot!r} but the simulated robot is {robot!r}")


def apply_parameters(target: HasParameters, params: "RobotParams | Mapping | str | Path",
                     robot: str | None = None) -> None:
    """Set every parameter of the file on an environment (env.unwrapped) or a backend; names are checked
    first, so a bad file changes nothing."""
    params = as_params(params, robot or "")
    check_names(params, target, robot)
    for name, p in params.parameters.items():
        target.set_parameter(name, p.value)


def current_parameters(target: HasParameters, robot: str) -> RobotParams:
    """Every parameter's present value (no ci): a template for calibration/ and a record of what ran."""
    return RobotParams(robot=robot, parameters={n: Parameter(target.get_parameter(n))
                                                for n in target.parameter_names()})


def randomization_ranges(params: RobotParams) -> dict[str, tuple[float, float]]:
    """Domain-randomisation range of every parameter with a ci."""
    return {name: p.ci for name, p in params.parameters.items() if p.ci is not None}
