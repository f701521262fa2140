"""The `robot-rl` command: `robot-rl <command> key=value ...`.

Each command lives in its own module, which defines a `Config` dataclass and `run(config) -> int | None`.
Modules are imported only when their command runs, so `robot-rl deploy` on a robot computer never
imports torch. `config=FILE.yaml` loads a YAML layer under the command-line pairs.

Bad input is reported in one line with exit status 2: each package raises its own `ValueError` subclass
for it (ConfigError, ParamsError, RecordingError, BundleError, ...), naming the file or field.
"""
from __future__ import annotations

import importlib
import sys

PROJECT_PACKAGES = ("robot_rl", "sim", "hardware", "calibration")

from robot_rl.overrides import ConfigError, build, load_yaml, parse_pairs

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("robot_rl.train", "train an agent in simulation (TD-MPC2, MoDem: demos=...) or on a robot (robot=dds)"),
    "eval": ("robot_rl.evaluate", "evaluate a checkpoint: mean return and success rate"),
    "demos": ("robot_rl.demos", "scripted-expert demos, or convert a recording or LeRobot dataset (format=lerobot)"),
    "export": ("robot_rl.export", "export a checkpoint to a policy bundle (ONNX policy + planner)"),
    "deploy": ("hardware.deploy", "run a bundle on a robot over DDS (no ROS 2 needed)"),
    "view": ("hardware.rerun_view", "play a rosbag2 recording in Rerun (an .rrd file when no viewer runs)"),
    "sweep": ("robot_rl.sweep", "a grid of training runs (tasks x methods x seeds) on Ray, results aggregated"),
    "sysid excite": ("calibration.excite", "design excitation trajectories and record them on the robot"),
    "sysid fit": ("calibration.fit", "fit robot parameters to recordings"),
    "calibrate intrinsics": ("calibration.camera_intrinsics", "camera intrinsics from a RealSense or board images"),
    "calibrate hand-eye": ("calibration.hand_eye", "camera pose from a recording of arm poses and board views"),
}


def usage() -> str:
    lines = ["usage: robot-rl <command> key=value ...", "", "commands:"]
    width = max(len(name) for name in COMMANDS)
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`robot-rl <command> --help` lists a command's keys and defaults; `robot-rl sysid --help` (a group)",
              "lists its subcommands."]
    return "\n".join(lines)


def _group_usage(group: str) -> str | None:
    """`robot-rl sysid`: the subcommands of a command group, None when `group` is not one."""
    members = {name: help_ for name, (_, help_) in COMMANDS.items() if name.startswith(f"{group} ")}
    if not members:
        return None
    lines = [f"usage: robot-rl {group} <subcommand> key=value ...", "", "subcommands:"]
    lines += [f"  {name.split(' ', 1)[1]:<14} {help_}" for name, help_ in members.items()]
    lines += ["", f"`robot-rl {group} <subcommand> --help` lists a subcommand's keys and defaults."]
    return "\n".join(lines)


def _split_command(argv: list[str]) -> tuple[str, list[str]]:
    for words in (2, 1):
        name = " ".join(argv[:words])
        if name in COMMANDS:
            return name, argv[words:]
    group = _group_usage(argv[0])
    if group is not None:
        raise ConfigError(f"unknown {argv[0]} subcommand {' '.join(argv[1:2])!r}\n\n{group}" if argv[1:] else
                          f"{argv[0]}: a subcommand is needed\n\n{group}")
    raise ConfigError(f"unknown command {' '.join(argv[:2])!r}\n\n{usage()}")


def _describe(config_cls: type) -> str:
    from robot_rl.overrides import flatten, to_dict

    return "\n".join(f"  {key}={value}" for key, value in flatten(to_dict(config_cls())).items())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    group = _group_usage(argv[0])
    if group is not None and (len(argv) == 1 or argv[1] in ("-h", "--help", "help")):
        print(group)
        return 0
    try:
        name, rest = _split_command(argv)
        module = importlib.import_module(COMMANDS[name][0])
        if any(a in ("-h", "--help") for a in rest):
            print(f"robot-rl {name} key=value ...\n\n{COMMANDS[name][1]}\n\nkeys and defaults:")
            print(_describe(module.Config))
            return 0
        pairs = parse_pairs(rest)
        layers, sources = [], []
        file_key = getattr(module, "CONFIG_FILE_KEY", "config")  # sweep: spec=
        if file_key in pairs:
            path = pairs.pop(file_key)
            layers.append(load_yaml(path))
            sources.append(path)
        layers.append(pairs)
        sources.append("command line")
        if hasattr(module, "default_layer"):  # e.g. train's device-dependent preset, under every other layer
            layers.insert(0, module.default_layer({**(layers[0] if len(layers) > 1 else {}), **pairs}))
            sources.insert(0, "preset")
        config = build(module.Config, *layers, sources=tuple(sources))
    except ConfigError as err:
        print(f"robot-rl: {err}", file=sys.stderr)
        return 2
    try:
        result = module.run(config)
    except ValueError as err:
        if not _is_input_error(err):
            raise
        print(f"robot-rl {name}: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


def _is_input_error(err: ValueError) -> bool:
    """A project package's own ValueError subclass, i.e. bad input it has already described."""
    kind = type(err)
    return kind is not ValueError and kind.__module__.split(".")[0] in PROJECT_PACKAGES


if __name__ == "__main__":
    sys.exit(main())
