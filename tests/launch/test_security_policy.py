"""The shipped SROS2 policy and governance (launch/security, docs/sros2.md) against the topics the nodes really use
(launch/config/*.yaml over each node's defaults): only policy_node's enclave may write the arm's command topics,
only the operator's may reset the e-stop, every node's own topics are granted, and the governance leaves no topic
without access control. (sros2 itself is not installable here; `ros2 security create_permission` consumes the
same file on the robot.)"""
import fnmatch
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SECURITY = ROOT / "launch" / "security"


def grants() -> dict[str, dict[str, set[str]]]:
    """enclave -> {"publish": topic expressions, "subscribe": ...} (ALLOW rules; the default is deny)."""
    out = {}
    for enclave in ET.parse(SECURITY / "robot_rl.policy.xml").getroot().iter("enclave"):
        rules = {"publish": set(), "subscribe": set()}
        for profile in enclave.iter("profile"):
            node = profile.get("node")
            for topics in profile.iter("topics"):
                for kind in rules:
                    if topics.get(kind) == "ALLOW":
                        rules[kind] |= {t.text.replace("~", f"/{node}") for t in topics.iter("topic")}
                    assert topics.get(kind) in (None, "ALLOW"), "only ALLOW rules: everything else is denied"
        out[enclave.get("path")] = rules
    return out


def allowed(expressions: set[str], topic: str) -> bool:
    return any(fnmatch.fnmatchcase(topic, e) for e in expressions)


def node_parameters(module: str, config: str) -> dict:
    import importlib

    defaults = dict(importlib.import_module(module).PARAMETERS)
    section = next(iter(yaml.safe_load((ROOT / "launch" / "config" / config).read_text()).values()))
    return {**defaults, **section["ros__parameters"]}


def test_only_the_policy_enclave_commands_the_arm_and_only_the_operator_resets():
    g = grants()
    p = node_parameters("hardware.nodes.policy_node", "policy.yaml")
    commands = [f"/{p['controller']}/commands", f"/{p['trajectory_controller']}/joint_trajectory",
                f"/{p['gripper_controller']}/commands"]
    for topic in commands:
        assert [e for e, r in g.items() if allowed(r["publish"], topic)] == ["/robot_rl/policy"], topic
    for topic in (p["estop_reset_topic"], f"{p['estop_reset_topic']}/operator", f"{p['estop_reset_topic']}/pendant"):
        writers = [e for e, r in g.items() if allowed(r["publish"], topic)]
        assert set(writers) <= {"/robot_rl/operator"}, (topic, writers)
    assert allowed(g["/robot_rl/operator"]["publish"], p["estop_reset_topic"])
    assert allowed(g["/robot_rl/estop"]["publish"], p["estop_topic"])
    reads = g["/robot_rl/policy"]["subscribe"]
    for key in ("joint_states_topic", "goal_topic", "object_topic", "image_topic", "estop_topic", "estop_reset_topic"):
        assert allowed(reads, p[key]), key
    assert allowed(reads, f"{p['estop_topic']}/pendant") and allowed(reads, f"{p['estop_reset_topic']}/operator")
    assert allowed(g["/robot_rl/policy"]["publish"], "/policy/diagnostics")


def test_every_node_gets_its_own_topics():
    g = grants()
    recorder = node_parameters("hardware.nodes.recorder_node", "recorder.yaml")
    assert all(allowed(g["/robot_rl/recorder"]["subscribe"], t) for t in recorder["topics"]), recorder["topics"]
    from hardware.nodes import camera_node

    for topic in (camera_node.COLOR_IMAGE, camera_node.COLOR_INFO, camera_node.DEPTH_IMAGE, camera_node.DEPTH_INFO):
        assert allowed(g["/robot_rl/camera"]["publish"], topic)
    controller = g["/robot_rl/controller_manager"]
    assert allowed(controller["publish"], "/joint_states")
    assert all(allowed(controller["subscribe"], t) for t in g["/robot_rl/policy"]["publish"]
               if t.endswith("/commands") or t.endswith("/joint_trajectory"))


def test_governance_controls_every_topic():
    rule = ET.parse(SECURITY / "governance.xml").getroot().find("domain_access_rules/domain_rule")
    assert rule.findtext("allow_unauthenticated_participants") == "false"
    assert rule.findtext("enable_join_access_control") == "true"
    (topic_rule,) = rule.findall("topic_access_rules/topic_rule")
    assert topic_rule.findtext("topic_expression") == "*"
    assert topic_rule.findtext("enable_write_access_control") == topic_rule.findtext("enable_read_access_control") \
        == "true"
    assert topic_rule.findtext("data_protection_kind") == "ENCRYPT"


def test_launch_files_give_nodes_enclaves_of_the_policy():
    import ast

    enclaves = set(grants())
    used = {}
    for path in sorted((ROOT / "launch").glob("*.launch.py")):
        for call in ast.walk(ast.parse(path.read_text())):
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Node":
                kw = {k.arg: k.value for k in call.keywords}
                args = ast.literal_eval(kw["ros_arguments"]) if "ros_arguments" in kw else []
                if "--enclave" in args:
                    used[ast.literal_eval(kw["executable"])] = args[args.index("--enclave") + 1]
    assert used == {"policy_node": "/robot_rl/policy", "camera_node": "/robot_rl/camera",
                    "recorder": "/robot_rl/recorder"}
    assert set(used.values()) <= enclaves
