"""The launch files and their parameter YAML, checked without ROS 2 (launch/launch_ros are not installable here):
the files are parsed with ast; the parameters each node declares are read from the node's own code (literal
`declare_parameter("name", default)` calls and a module-level PARAMETERS dict), so a renamed or retyped parameter
breaks these tests rather than a launch on the robot."""
import ast
import re
from pathlib import Path

import pytest
import yaml

from hardware.transport.base import coerce_parameter, load_params_file

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch"
CONFIG = LAUNCH / "config"
LAUNCH_FILES = sorted(LAUNCH.glob("*.launch.py"))
REQUIRED_LAUNCH_FILES = {"policy.launch.py", "sim_robot.launch.py", "camera.launch.py", "bringup.launch.py"}


def console_scripts() -> dict[str, str]:
    """executable -> module, from setup.py's entry_points (parsed, not run)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    entries = ast.literal_eval(value)
                    return {name.strip(): target.strip().split(":")[0]
                            for name, target in (entry.split("=", 1) for entry in entries)}
    raise AssertionError("setup.py: no console_scripts")


def declared_parameters(module: str) -> dict[str, object]:
    """name -> default of every parameter a node module declares (from its source)."""
    path = ROOT / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    params: dict[str, object] = {}
    for node in ast.walk(tree):
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "PARAMETERS" for t in targets):
            assert isinstance(node.value, ast.Dict)
            for key, value in zip(node.value.keys, node.value.values):
                if key is None:   # **{...}: a computed block, evaluated by importing the module
                    import importlib
                    return importlib.import_module(module).PARAMETERS
                params[ast.literal_eval(key)] = ast.literal_eval(value)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "declare_parameter" and node.args and isinstance(node.args[0], ast.Constant)):
            default = ast.literal_eval(node.args[1]) if len(node.args) > 1 else None
            params[node.args[0].value] = default
    return params


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and ((isinstance(n.func, ast.Name) and n.func.id == name)
                 or (isinstance(n.func, ast.Attribute) and n.func.attr == name))]


def keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def const(node) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def launch_info(path: Path) -> dict:
    tree = ast.parse(path.read_text())
    declared = {}
    for call in calls(tree, "DeclareLaunchArgument"):
        default = keyword(call, "default_value")
        declared[const(call.args[0])] = default
    used = {const(c.args[0]) for c in calls(tree, "LaunchConfiguration")}
    nodes = calls(tree, "Node")
    includes = []
    for call in calls(tree, "IncludeLaunchDescription"):
        files = [const(n) for n in ast.walk(call) if isinstance(const(n), str) and const(n).endswith(".launch.py")]
        args = keyword(call, "launch_arguments")
        keys = []
        if args is not None:
            mapping = next(n for n in ast.walk(args) if isinstance(n, ast.Dict))
            keys = [const(k) for k in mapping.keys]
        includes.append((files, keys))
    return {"tree": tree, "declared": declared, "used": used, "nodes": nodes, "includes": includes}


def test_the_launch_files_exist_and_parse():
    assert REQUIRED_LAUNCH_FILES <= {p.name for p in LAUNCH_FILES}
    for path in LAUNCH_FILES:
        info = launch_info(path)
        functions = [n.name for n in info["tree"].body if isinstance(n, ast.FunctionDef)]
        assert "generate_launch_description" in functions, path


def test_every_launch_configuration_is_declared():
    for path in LAUNCH_FILES:
        info = launch_info(path)
        assert info["used"] <= set(info["declared"]), (path.name, info["used"] - set(info["declared"]))
        assert None not in info["declared"], f"{path.name}: a launch argument name is not a literal"


def test_included_launch_files_exist_and_get_only_arguments_they_declare():
    names = {p.name: launch_info(p) for p in LAUNCH_FILES}
    seen = 0
    for path in LAUNCH_FILES:
        for files, keys in launch_info(path)["includes"]:
            assert len(files) == 1, f"{path.name}: include without a literal launch file name"
            assert files[0] in names, f"{path.name} includes {files[0]}, which launch/ lacks"
            target = names[files[0]]["declared"]
            assert set(keys) <= set(target), (path.name, files[0], set(keys) - set(target))
            # arguments without a default must be passed on
            required = {k for k, default in target.items() if default is None}
            assert required <= set(keys), (path.name, files[0], required - set(keys))
            seen += 1
    assert seen >= 3   # bringup includes sim_robot, camera and policy


def test_nodes_use_console_scripts_of_this_package_and_declared_parameters():
    scripts = console_scripts()
    checked = 0
    for path in LAUNCH_FILES:
        for call in launch_info(path)["nodes"]:
            assert const(keyword(call, "package")) == "robot_rl", path.name
            executable = const(keyword(call, "executable"))
            assert executable in scripts, f"{path.name}: executable {executable!r} is no console script in setup.py"
            module = scripts[executable]
            assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), module
            declared = declared_parameters(module)
            params = keyword(call, "parameters")
            for item in getattr(params, "elts", []):
                if not isinstance(item, ast.Dict):
                    continue
                for key, value in zip(item.keys, item.values):
                    name = const(key)
                    assert name in declared, f"{path.name}: {executable} has no parameter {name!r}"
                    value_type = keyword(value, "value_type") if isinstance(value, ast.Call) else None
                    if value_type is not None:   # ParameterValue(..., value_type=T) must match the default's type
                        assert type(declared[name]).__name__ == value_type.id, (path.name, name)
                    checked += 1
    assert checked >= 6


def config_node_name(path: Path) -> str:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and len(data) == 1, f"{path}: expected one node section"
    return next(iter(data))


EXECUTABLE_OF_CONFIG = {"policy.yaml": "policy_node", "sim_robot.yaml": "sim_robot_node",
                        "camera.yaml": "camera_node", "recorder.yaml": "recorder"}


@pytest.mark.parametrize("config_name", sorted(EXECUTABLE_OF_CONFIG))
def test_parameter_yaml_matches_the_node(config_name):
    path = CONFIG / config_name
    module = console_scripts()[EXECUTABLE_OF_CONFIG[config_name]]
    declared = declared_parameters(module)
    node_name = config_node_name(path)
    params = load_params_file(path, node_name)   # the transport's own reader: ros__parameters, nested names
    assert params, path
    unknown = sorted(set(params) - set(declared))
    assert not unknown, f"{path.name}: parameters {unknown} are not declared by {module}"
    for name, value in params.items():
        coerce_parameter(node_name, name, declared[name], value)   # raises on a type mismatch


def test_launch_nodes_are_named_as_their_config_sections():
    sections = {config_node_name(CONFIG / name): name for name in EXECUTABLE_OF_CONFIG}
    for path in LAUNCH_FILES:
        for call in launch_info(path)["nodes"]:
            name = const(keyword(call, "name"))
            assert name in sections, f"{path.name}: node {name!r} has no section in launch/config"
            executable = const(keyword(call, "executable"))
            assert EXECUTABLE_OF_CONFIG[sections[name]] == executable, (path.name, name, executable)


def test_setup_installs_launch_and_config():
    text = (ROOT / "setup.py").read_text()
    assert re.search(r'glob\("launch/\*\.launch\.py"\)', text) and re.search(r'glob\("launch/config/\*\.yaml"\)', text)
    configs = {p.name for p in CONFIG.glob("*.yaml")}
    assert set(EXECUTABLE_OF_CONFIG) <= configs
    for path in LAUNCH_FILES:   # configs a launch file names by literal are installed
        for name in re.findall(r'"([a-z_]+\.yaml)"', path.read_text()):
            assert name in configs, (path.name, name)


def test_a_wrong_parameter_would_be_caught(tmp_path):
    """The check above is not vacuous: a typo or a wrong type in a YAML file is found."""
    declared = declared_parameters(console_scripts()["sim_robot_node"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("sim_robot:\n  ros__parameters:\n    rate_hz: fast\n    backendd: mujoco\n")
    params = load_params_file(bad, "sim_robot")
    assert set(params) - set(declared) == {"backendd"}
    with pytest.raises(TypeError, match="rate_hz"):
        coerce_parameter("sim_robot", "rate_hz", declared["rate_hz"], params["rate_hz"])
