"""Transports for the node interface (hardware/transport/base.py): DDS via cyclonedds, or rclpy on robots.

`run_node` is what every node's console script calls. The transport is chosen by ROBOT_RL_TRANSPORT
(`dds` or `ros2`); unset, rclpy is used when it is importable (a sourced ROS 2), DDS otherwise.
Transport modules are imported lazily: rclpy and cyclonedds load only when asked for.
"""
import importlib.util
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from hardware.transport.base import Node, NodeOptions
from hardware.transport.node_args import NodeArgumentError, node_help, parse_node_args

TRANSPORTS = ("dds", "ros2")


def choose_transport(transport: str | None = None) -> str:
    transport = transport or os.environ.get("ROBOT_RL_TRANSPORT") or ""
    if not transport:
        return "ros2" if importlib.util.find_spec("rclpy") is not None else "dds"
    if transport not in TRANSPORTS:
        raise ValueError(f"transport {transport!r}: expected one of {TRANSPORTS} (ROBOT_RL_TRANSPORT)")
    return transport


def create_node(options: NodeOptions, transport: str | None = None, **dds_kwargs) -> Node:
    """A node on the chosen transport; `dds_kwargs` (domain_id, config) go to DdsNode."""
    if choose_transport(transport) == "ros2":
        from hardware.transport.ros2 import Ros2Node

        return Ros2Node(options)
    from hardware.transport.dds import DdsNode

    return DdsNode.from_options(options, **dds_kwargs)


def create_executor(node: Node):
    if type(node).__name__ == "Ros2Node":
        from hardware.transport.ros2 import Ros2Executor

        return Ros2Executor([node])
    from hardware.transport.dds import DdsExecutor

    return DdsExecutor([node])


def run_node(default_name: str, logic: Callable[[Node], Any], argv: Sequence[str] | None = None,
             transport: str | None = None, parameters: Mapping[str, Any] | None = None,
             description: str | None = None) -> int:
    """Console-script body: parse ROS-style args, build the node and its logic, spin until SIGINT/SIGTERM.

    `--help` prints `description` (the node module's docstring) and `parameters` (name -> default) and returns 0.
    Bad arguments or parameters (ValueError while the node starts) end it with the message and exit status 1
    (2 for the command line itself), without a traceback. On stop, `logic.close()` runs when the logic has one
    (flush files, hold the arm), then the node is destroyed.
    """
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s] %(message)s")
    executable = Path(sys.argv[0]).stem if argv is None and sys.argv[0] not in ("", "-c") else default_name
    try:
        options = parse_node_args(sys.argv[1:] if argv is None else argv, default_name)
    except ValueError as error:
        print(f"{executable}: error: {error}", file=sys.stderr)
        return 2
    if options.help:
        print(node_help(executable, description, parameters or {}), end="")
        return 0
    if options.log_level:
        logging.getLogger().setLevel(options.log_level)
    try:
        node = create_node(options, transport)
    except ValueError as error:   # e.g. ROS_SECURITY_* asking for what this DDS cannot do (dds_participant.py)
        print(f"{executable}: error: {error}", file=sys.stderr)
        return 1
    executor = create_executor(node)
    previous = {sig: signal.signal(sig, lambda *_: executor.shutdown()) for sig in (signal.SIGINT, signal.SIGTERM)}
    instance = None
    try:
        try:
            instance = logic(node)
            undeclared = node.undeclared_overrides()
            if undeclared:   # rclpy would ignore them silently (automatically_declare_... is False): a typo
                raise NodeArgumentError(f"node {node.name}: unknown parameters {undeclared}; see --help")
        except ValueError as error:
            print(f"{executable}: error: {error}", file=sys.stderr)
            return 1
        executor.spin()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        close = getattr(instance, "close", None)
        if close is not None:
            close()
        node.destroy()
    return 0
