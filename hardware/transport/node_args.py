"""How a node is started, the ROS 2 way, on both transports: its command line, parameter files and parameter types.

The command line is split as rcl splits it (rcl/src/rcl/arguments.c): inside ``--ros-args`` (until ``--``) come
rcl's own arguments, ``-p/--param [node:]name:=value``, ``--params-file FILE``, ``-r/--remap [node:]from:=to``
(``__node``/``__name``, ``__ns`` rename the node), ``-e/--enclave /name``, ``--log-level [logger:=]level``,
``--log-config-file FILE``, ``--log-file-name NAME`` and the ``--enable-/--disable-{stdout,rosout,
external-lib}-logs`` switches; anything else there is refused, as rcl refuses it. Parameter overrides and files
apply in the order given (rcl writes both into one table). Outside ``--ros-args`` our nodes take the short form
``name:=value`` and ``-h/--help``.

On rclpy the rcl arguments are handed to ``rclpy.init`` verbatim (``NodeOptions.ros_args``), so rcl itself
applies remaps, the enclave and logging; the short form goes in as the node's ``parameter_overrides`` (which win
over rcl's, as in rclpy). The DDS transport applies the same parse itself.

Parameter types follow rclpy (rclpy/parameter.py ``Parameter.Type.from_parameter_value``, rclpy/node.py
``_apply_descriptor``): a parameter's type is its default's, and an override of another type is refused (an
integer for a double too: write ``50.0``, not ``50``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

ROS_ARGS = "--ros-args"
ROS_ARGS_END = "--"
PARAM_FLAGS = ("-p", "--param")
REMAP_FLAGS = ("-r", "--remap")
ENCLAVE_FLAGS = ("-e", "--enclave")
PARAMS_FILE_FLAG = "--params-file"
LOG_LEVEL_FLAG = "--log-level"
# rcl logging options: taken (and passed to rcl on rclpy), no effect on the DDS transport's Python logging
LOG_VALUE_FLAGS = ("--log-config-file", "--log-file-name")
LOG_SWITCHES = tuple(f"--{on}-{what}-logs" for on in ("enable", "disable")
                     for what in ("stdout", "rosout", "external-lib"))
VALUE_FLAGS = (*PARAM_FLAGS, *REMAP_FLAGS, *ENCLAVE_FLAGS, PARAMS_FILE_FLAG, LOG_LEVEL_FLAG, *LOG_VALUE_FLAGS)
HELP_FLAGS = ("-h", "--help")


class NodeArgumentError(ValueError):
    """A node's command line, parameter file or parameter override is not what ROS 2 accepts."""


class ParameterTypeError(NodeArgumentError, TypeError):
    """An override whose type is not the parameter's (rclpy: InvalidParameterTypeException)."""


@dataclass(frozen=True)
class Remap:
    """One `-r [node:]from:=to` topic rule (names as written; expanded against the node when applied)."""
    source: str
    target: str
    node: str | None = None


@dataclass
class NodeOptions:
    """What a node is started with (as `--ros-args` carries it), for either transport."""
    name: str
    namespace: str = "/"
    parameters: dict[str, Any] | None = None      # every override: rcl's (in order), then the short form
    log_level: str | None = None
    remaps: list[Remap] = field(default_factory=list)
    enclave: str | None = None                    # SROS2 enclave (-e/--enclave); None: ROS 2's default "/"
    ros_args: list[str] = field(default_factory=list)   # rcl's arguments verbatim, for rclpy.init
    short_parameters: dict[str, Any] = field(default_factory=dict)   # name:=value outside --ros-args
    help: bool = False


# ---------------------------------------------------------------- parameter types (rclpy's)
def ros_parameter_type(value: Any) -> str:
    """rclpy's Parameter.Type for a Python value (an empty list is BYTE_ARRAY, as in rclpy)."""
    if value is None:
        return "NOT_SET"
    for kind, name in ((bool, "BOOL"), (int, "INTEGER"), (float, "DOUBLE"), (str, "STRING")):
        if isinstance(value, kind):
            return name
    if isinstance(value, (list, tuple)):
        for kind, name in ((bytes, "BYTE_ARRAY"), (bool, "BOOL_ARRAY"), (int, "INTEGER_ARRAY"),
                           (float, "DOUBLE_ARRAY"), (str, "STRING_ARRAY")):
            if all(isinstance(v, kind) for v in value):
                return name
        raise TypeError(f"{value!r}: a list parameter holds one type (bools, integers, doubles or strings)")
    raise TypeError(f"{value!r}: not a ROS 2 parameter value (bool, integer, double, string or a list of one)")


def coerce_parameter(node: str, name: str, default: Any, value: Any) -> Any:
    """The override `value` for parameter `name` declared with `default`; ParameterTypeError where rclpy raises
    InvalidParameterTypeException (the type is the default's; no integer for a double)."""
    if default is None:   # dynamically typed
        return value
    expected = ros_parameter_type(default)
    try:
        got = ros_parameter_type(value)
    except TypeError as error:
        raise ParameterTypeError(f"parameter {node}.{name}: {error}") from None
    if got != expected:
        hint = " (write it with a decimal point, e.g. 50.0)" if expected.startswith("DOUBLE") and \
            got.startswith("INTEGER") else ""
        raise ParameterTypeError(f"parameter {node}.{name}: expected {expected} like its default {default!r}, got {got} "
                        f"{value!r}{hint}")
    return list(value) if isinstance(value, tuple) else value


# ---------------------------------------------------------------- parameter files
def _parse_value(text: str) -> Any:
    import yaml  # rcl parses `-p name:=value` values as YAML, so we do too

    return yaml.safe_load(text)


def load_params_file(path: str | os.PathLike, node_name: str, namespace: str = "/") -> dict[str, Any]:
    """Parameters for a node from a ROS 2 params YAML ({/** | node | /ns/node: {ros__parameters: {...}}})."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise NodeArgumentError(f"{path}: cannot read ROS 2 parameter file: {error}") from error
    if not isinstance(data, dict):
        raise NodeArgumentError(f"{path}: expected a mapping '<node name>: {{ros__parameters: {{...}}}}'")
    params: dict[str, Any] = {}
    full_name = fully_qualified_name(node_name, namespace)
    for key in dict.fromkeys(("/**", node_name, "/" + node_name, full_name, full_name[1:])):  # wildcard first
        section = data.get(key)
        if section is None:
            continue
        if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
            raise NodeArgumentError(f"{path}: section {key!r} must hold a 'ros__parameters' mapping")
        params.update(_flatten(section["ros__parameters"]))
    return params


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def fully_qualified_name(node_name: str, namespace: str = "/") -> str:
    return f"/{namespace.strip('/')}/{node_name}" if namespace.strip("/") else f"/{node_name}"


# ---------------------------------------------------------------- the command line
def _rule(flag: str, text: str) -> tuple[str | None, str, str]:
    """'[node:]lhs:=rhs' -> (node, lhs, rhs), as rcl reads -p and -r rules."""
    lhs, sep, rhs = text.partition(":=")
    if not sep or not lhs:
        raise NodeArgumentError(f"{flag} {text!r}: expected [node:]name:=value")
    node, colon, name = lhs.rpartition(":")
    return (node if colon else None), name, rhs


def parse_node_args(argv: Sequence[str], default_name: str) -> NodeOptions:
    """A node's options from its command line, as `ros2 run` / launch pass it (see the module docstring).

    rcl's flags are also taken outside --ros-args (our earlier short form); they reach rclpy inside --ros-args.
    Unknown arguments are an error naming them.
    """
    options = NodeOptions(name=default_name, parameters={})
    overrides: list[tuple[str, str]] = []   # ("param", rule) / ("file", path) in command-line order
    args, i, in_ros_args = list(argv), 0, False
    while i < len(args):
        arg = args[i]
        if arg == ROS_ARGS:
            in_ros_args = True
        elif arg == ROS_ARGS_END:
            in_ros_args = False
        elif arg in VALUE_FLAGS:
            if i + 1 >= len(args):
                raise NodeArgumentError(f"{arg} needs a value")
            value = args[i + 1]
            options.ros_args += [arg, value]
            if arg in PARAM_FLAGS:
                _rule(arg, value)
                overrides.append(("param", value))
            elif arg == PARAMS_FILE_FLAG:
                overrides.append(("file", value))
            elif arg in REMAP_FLAGS:
                node, source, target = _rule(arg, value)
                if source in ("__node", "__name"):
                    options.name = target
                elif source == "__ns":
                    options.namespace = target
                else:
                    options.remaps.append(Remap(source, target, node))
            elif arg in ENCLAVE_FLAGS:
                if not value.startswith("/"):
                    raise NodeArgumentError(f"{arg} {value!r}: an enclave is an absolute name like /robot/policy")
                options.enclave = value
            elif arg == LOG_LEVEL_FLAG:
                logger, sep, level = value.rpartition(":=")
                if not sep or logger == default_name:
                    options.log_level = level.upper()
            i += 2
            continue
        elif arg in LOG_SWITCHES:
            options.ros_args.append(arg)
        elif in_ros_args:
            raise NodeArgumentError(f"unknown ROS argument {arg!r} after {ROS_ARGS} (rcl refuses it too)")
        elif arg in HELP_FLAGS:
            options.help = True
        elif ":=" in arg or ("=" in arg and not arg.startswith("-")):
            key, _, text = arg.partition(":=") if ":=" in arg else arg.partition("=")
            options.short_parameters[key] = _parse_value(text)
        else:
            raise NodeArgumentError(f"unexpected argument {arg!r}; expected name:=value, -p name:=value, "
                                    f"--params-file FILE or --help")
        i += 1
    if options.ros_args:
        options.ros_args.insert(0, ROS_ARGS)
    full_name = fully_qualified_name(options.name, options.namespace)
    for kind, value in overrides:
        if kind == "file":
            options.parameters.update(load_params_file(value, options.name, options.namespace))
            continue
        node, name, text = _rule("-p", value)
        if node is None or node in (options.name, full_name):
            options.parameters[name] = _parse_value(text)
    options.parameters.update(options.short_parameters)   # constructor overrides win in rclpy
    return options


def remap_topic(resolved: str, options_remaps: Sequence[Remap], node_name: str, namespace: str) -> str:
    """The topic after the first matching `-r from:=to` rule (both sides expanded against the node, as rcl does)."""
    from hardware.transport.base import resolve_topic

    for rule in options_remaps:
        if rule.node is not None and rule.node != node_name:
            continue
        if resolve_topic(rule.source, node_name, namespace) == resolved:
            return resolve_topic(rule.target, node_name, namespace)
    return resolved


# ---------------------------------------------------------------- --help
def node_help(executable: str, description: str | None, parameters: Mapping[str, Any]) -> str:
    """What `<node> --help` prints: usage, the node's docstring, and each parameter with its type and default."""
    lines = [f"usage: {executable} [name:=value ...] [--ros-args [-p name:=value] [--params-file FILE] "
             "[-r from:=to] [-r __node:=NAME] [-r __ns:=/NS] [-e /ENCLAVE] [--log-level LEVEL]]", ""]
    if description:
        lines += [description.strip(), ""]
    lines.append("parameters (name, type, default):")
    width = max((len(n) for n in parameters), default=0)
    for name, default in parameters.items():
        lines.append(f"  {name:<{width}}  {ros_parameter_type(default):<13}  {default!r}")
    lines += ["", "Transport: ROBOT_RL_TRANSPORT=ros2 (rclpy) | dds (cyclonedds; default when rclpy is not "
              "importable). DDS discovery follows ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE, ROS_STATIC_PEERS "
              "and ROS_LOCALHOST_ONLY as rmw_cyclonedds does; SROS2: docs/sros2.md."]
    return "\n".join(lines) + "\n"
