"""A node's command line and parameters as ROS 2 handles them, checked against rcl's and rclpy's documented
behaviour (rcl/src/rcl/arguments.c, rclpy/parameter.py, rclpy/node.py), on the DDS transport for real and on the
rclpy adapter through a stand-in for rclpy (FakeRclpy: rclpy cannot be installed here) that records what the
adapter hands it."""
import sys
import types

import pytest

from hardware import messages as m
from hardware.transport.dds import DdsNode
from hardware.transport.node_args import (NodeArgumentError, ParameterTypeError, Remap, coerce_parameter,
                                          parse_node_args, ros_parameter_type)


def test_rcl_arguments_pass_through_verbatim_and_are_parsed(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    a: 2.0\n")
    argv = ["gain:=0.5", "--ros-args", "-r", "chatter:=/remapped", "-r", "other:cmd:=/x", "--remap", "__ns:=/arm",
            "-e", "/robot/policy", "-p", "a:=1.0", "--params-file", str(params), "--enable-stdout-logs",
            "--log-level", "warn", "--"]
    options = parse_node_args(argv, "policy")
    assert options.ros_args == argv[1:-1]   # what rclpy.init gets, verbatim
    assert options.remaps == [Remap("chatter", "/remapped"), Remap("cmd", "/x", node="other")]
    assert (options.namespace, options.enclave, options.log_level) == ("/arm", "/robot/policy", "WARN")
    # -p and --params-file write one table in command-line order (the file came last); short form wins
    assert options.parameters == {"a": 2.0, "gain": 0.5} and options.short_parameters == {"gain": 0.5}
    assert parse_node_args(["--ros-args", "--params-file", str(params), "-p", "a:=1.0"], "n").parameters == {"a": 1.0}


def test_node_specific_rules_apply_to_their_node_only():
    options = parse_node_args(["--ros-args", "-p", "policy:rate:=5.0", "-p", "camera:fps:=15", "-r",
                               "__node:=policy"], "renamed_later")
    assert options.parameters == {"rate": 5.0} and options.name == "policy"


@pytest.mark.parametrize("argv, message", [
    (["--ros-args", "--bogus"], "unknown ROS argument '--bogus' after --ros-args"),
    (["--ros-args", "rate:=1.0"], "unknown ROS argument 'rate:=1.0'"),   # rcl: not a ROS argument
    (["--ros-args", "-r", "nothing"], "expected \\[node:\\]name:=value"),
    (["--ros-args", "-p"], "-p needs a value"),
    (["--ros-args", "-e", "relative"], "an enclave is an absolute name"),
    (["--verbose"], "unexpected argument '--verbose'"),
])
def test_bad_arguments_are_refused_by_name(argv, message):
    with pytest.raises(NodeArgumentError, match=message):
        parse_node_args(argv, "n")


def test_parameter_types_follow_rclpy():
    assert [ros_parameter_type(v) for v in (True, 1, 1.0, "s", [1.0], [1], [True], ["a"], [], None)] == [
        "BOOL", "INTEGER", "DOUBLE", "STRING", "DOUBLE_ARRAY", "INTEGER_ARRAY", "BOOL_ARRAY", "STRING_ARRAY",
        "BYTE_ARRAY", "NOT_SET"]
    with pytest.raises(TypeError, match="holds one type"):
        ros_parameter_type([1, "a"])
    assert coerce_parameter("n", "x", 1.0, 2.5) == 2.5 and coerce_parameter("n", "t", [0.0], (1.0, 2.0)) == [1.0, 2.0]
    for default, value in ((1.0, 2), (1, 2.0), (True, 1), ("s", 1), ([0.0], [1, 2]), (["a"], []), (1, None)):
        with pytest.raises(ParameterTypeError):
            coerce_parameter("n", "x", default, value)


def test_dds_node_applies_remaps_like_rcl(domain):
    node = DdsNode("ctl", namespace="/arm", domain_id=domain,
                   remaps=[Remap("~/commands", "/forward_position_controller/commands"),
                           Remap("joint_states", "/robot/joint_states"), Remap("goal", "/x", node="someone_else")])
    assert node.create_publisher(m.Float64MultiArray, "~/commands").topic == "/forward_position_controller/commands"
    assert node.resolve("joint_states") == "/robot/joint_states"
    assert node.resolve("/arm/joint_states") == "/robot/joint_states"   # rcl matches the expanded name
    assert node.resolve("goal") == "/arm/goal"
    node.destroy()


class FakeRclpy:
    """Stand-in for rclpy (cannot be installed here): records rclpy.init's args and the Node's keywords, and
    types parameters as rclpy does (InvalidParameterTypeException for an override of another type)."""

    def __init__(self):
        self.init_args = None
        self.node_kwargs = None
        self.rcl_overrides: dict = {}

    def modules(self) -> dict[str, types.ModuleType]:
        fake = self

        class ParameterException(Exception):
            pass

        class InvalidParameterTypeException(ParameterException):
            pass

        class Parameter:
            def __init__(self, name, value=None):
                self.name, self.value = name, value

        class Node:
            def __init__(self, name, namespace=None, parameter_overrides=(), cli_args=None):
                fake.node_kwargs = dict(name=name, namespace=namespace, cli_args=cli_args,
                                        parameter_overrides={p.name: p.value for p in parameter_overrides})
                self._overrides = {**fake.rcl_overrides, **fake.node_kwargs["parameter_overrides"]}
                self._declared = {}
                self._name, self._namespace = name, namespace

            def declare_parameter(self, name, default):
                value = self._overrides.get(name, default)
                if ros_parameter_type(value) != ros_parameter_type(default):
                    raise InvalidParameterTypeException(f"Trying to set parameter '{name}' to '{value}'")
                self._declared[name] = value
                return Parameter(name, value)

            def has_parameter(self, name):
                return name in self._declared

            def get_name(self):
                return self._name

            def get_namespace(self):
                return self._namespace

        rclpy = types.ModuleType("rclpy")
        rclpy.ok = lambda: fake.init_args is not None
        rclpy.init = lambda args=None: setattr(fake, "init_args", list(args))
        node, parameter, exceptions = (types.ModuleType(f"rclpy.{n}") for n in ("node", "parameter", "exceptions"))
        node.Node, parameter.Parameter = Node, Parameter
        exceptions.InvalidParameterTypeException = InvalidParameterTypeException
        return {"rclpy": rclpy, "rclpy.node": node, "rclpy.parameter": parameter, "rclpy.exceptions": exceptions}


def test_rclpy_adapter_hands_rcl_its_arguments_and_checks_overrides(monkeypatch):
    from hardware.transport.ros2 import Ros2Node

    fake = FakeRclpy()
    for name, module in fake.modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    options = parse_node_args(["mode:=planner", "--ros-args", "-r", "/joint_states:=/fr3/joint_states", "--enclave",
                               "/robot/policy", "-p", "rate:=50", "-p", "typo:=1.0"], "policy")
    fake.rcl_overrides = {"rate": 50, "typo": 1.0}   # what rcl itself parses from those arguments
    node = Ros2Node(options)
    assert fake.init_args == ["policy", "--ros-args", "-r", "/joint_states:=/fr3/joint_states", "--enclave",
                              "/robot/policy", "-p", "rate:=50", "-p", "typo:=1.0"]
    assert fake.node_kwargs["parameter_overrides"] == {"mode": "planner"} and fake.node_kwargs["cli_args"] is None
    assert node.declare_parameter("mode", "policy") == "planner"
    with pytest.raises(ParameterTypeError, match="parameter policy.rate"):   # an int for a double: rclpy refuses
        node.declare_parameter("rate", 20.0)
    assert node.undeclared_overrides() == ["rate", "typo"]   # rclpy would have ignored 'typo' silently
