"""hardware/bundle.py refuses corrupt, truncated, incomplete or mismatched bundles, naming the file and field."""
import json
import shutil

import pytest

from hardware.bundle import BundleError, load_bundle, sha256_of
from hardware.policy_runtime import open_bundle
from tests.hardware.exported_bundle import make_bundle

PANDA = tuple(f"panda_joint{i}" for i in range(1, 8))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder, _ = make_bundle(tmp_path_factory.mktemp("export"))
    return folder


@pytest.fixture
def bundle(exported, tmp_path):
    return shutil.copytree(exported, tmp_path / "bundle")


def edit_json(folder, change):
    meta = json.loads((folder / "bundle.json").read_text())
    change(meta)
    (folder / "bundle.json").write_text(json.dumps(meta))


def test_a_good_bundle_loads_with_the_robots_joints(bundle):
    b = load_bundle(bundle, PANDA)
    assert b.joint_names == PANDA and b.obs_keys == ("state",) and b.action_dim == 8
    assert b.safety.joint_names == PANDA and b.chain.joint_names == PANDA
    assert sum(size for _, size in b.state_layout) == b.inputs["policy"][0].shape[1]


def test_mismatched_joint_names_are_refused(bundle):
    robot = (*PANDA[:6], "other_joint7")
    with pytest.raises(BundleError, match=r"bundle\.json: field 'joint_names'.*other_joint7"):
        load_bundle(bundle, robot)
    with pytest.raises(BundleError, match="joint_names"):
        open_bundle(bundle, "policy", joint_names=PANDA[::-1])


def test_corrupt_model_fails_the_hash(bundle):
    path = bundle / "planner.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"planner\.onnx: sha256 .* differs from .*models\.planner\.sha256"):
        load_bundle(bundle)


def test_truncated_model_is_refused_by_onnxruntime_even_with_a_matching_hash(bundle):
    path = bundle / "policy.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    edit_json(bundle, lambda m: m["models"]["policy"].update(sha256=sha256_of(path)))
    with pytest.raises(BundleError, match=r"policy\.onnx: onnxruntime cannot load it"):
        load_bundle(bundle)
    with pytest.raises(BundleError, match=r"policy\.onnx: onnxruntime cannot load it"):
        open_bundle(bundle, "policy")


@pytest.mark.parametrize("name", ["policy.onnx", "planner.onnx", "bundle.json"])
def test_missing_files_are_named(bundle, name):
    (bundle / name).unlink()
    with pytest.raises(BundleError, match=rf"{name}: missing"):
        load_bundle(bundle)


def test_bad_json_and_wrong_format_or_version(bundle):
    path = bundle / "bundle.json"
    good = path.read_text()
    path.write_text(good[: len(good) // 2])
    with pytest.raises(BundleError, match=r"bundle\.json: not valid JSON"):
        load_bundle(bundle)
    path.write_text(good)
    edit_json(bundle, lambda m: m.update(version=99))
    with pytest.raises(BundleError, match="field 'version' is 99"):
        load_bundle(bundle)
    path.write_text(good)
    edit_json(bundle, lambda m: m.update(format="something.else"))
    with pytest.raises(BundleError, match="field 'format'"):
        load_bundle(bundle)


@pytest.mark.parametrize("change, match", [
    (lambda m: m.pop("control_hz"), "missing field 'control_hz'"),
    (lambda m: m.update(control_hz=-5), "'control_hz' must be > 0"),
    (lambda m: m["action"].update(dim=5), r"action: field 'dim' is 5; the 'joint' action space of 7 joints takes 8"),
    (lambda m: m["action"].update(space="cartesian"), r"action: field 'space' is 'cartesian'"),
    (lambda m: m["observation"].update(action_history=2), r"'last_actions' has 0 values; action_history=2"),
    (lambda m: m["observation"].update(keys=["depth"]), "field 'keys'"),
    (lambda m: m["safety"].update(velocity=[1.0]), r"safety: field 'velocity' must have 7 entries"),
    (lambda m: m["kinematics"]["joints"].pop(), "kinematics"),
    (lambda m: m["models"]["planner"]["inputs"][0].update(shape=[1, 25]), r"planner\.onnx: inputs .* differ from"),
    (lambda m: m["models"]["policy"]["outputs"][0].update(name="act"), r"policy\.onnx: outputs .* differ from"),
])
def test_bad_fields_are_named(bundle, change, match):
    edit_json(bundle, change)
    with pytest.raises(BundleError, match=match):
        load_bundle(bundle)
