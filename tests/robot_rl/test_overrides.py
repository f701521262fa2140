from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from robot_rl.cli import main as cli_main
from robot_rl.overrides import ConfigError, build, load_yaml, parse_pairs, to_dict


@dataclass
class Planner:
    samples: int = 512
    temperature: float = 0.5


@dataclass
class Example:
    task: str = "panda-reach"
    steps: int = 1000
    lr: float = 3e-4
    compile: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    demos: Path | None = None
    sizes: tuple[int, ...] = (256, 256)
    planner: Planner = field(default_factory=Planner)


def test_pairs_coerce_to_annotated_types():
    cfg = build(Example, parse_pairs(["steps=2e3", "lr=0.001", "compile=true", "device=cpu",
                                      "demos=demos/pick", "sizes=[64,32]", "planner.samples=64"]))
    assert (cfg.steps, cfg.lr, cfg.compile, cfg.device) == (2000, 0.001, True, "cpu")
    assert cfg.demos == Path("demos/pick") and cfg.sizes == (64, 32) and cfg.planner.samples == 64
    assert cfg.planner.temperature == 0.5  # untouched defaults survive a nested override


def test_later_layers_win_and_nested_yaml(tmp_path):
    path = tmp_path / "preset.yaml"
    path.write_text("steps: 50\nplanner:\n  samples: 128\n  temperature: 1.0\n")
    cfg = build(Example, load_yaml(path), {"planner.temperature": "2"}, sources=(str(path), "command line"))
    assert cfg.steps == 50 and cfg.planner.samples == 128 and cfg.planner.temperature == 2.0
    assert to_dict(cfg)["planner"] == {"samples": 128, "temperature": 2.0}


@pytest.mark.parametrize("pairs, words", [
    ({"stepz": "1"}, ["unknown key 'stepz'", "steps"]),
    ({"steps": "ten"}, ["'steps'", "expected int"]),
    ({"steps": "1.5"}, ["expected an integer"]),
    ({"compile": "maybe"}, ["expected true or false"]),
    ({"device": "tpu"}, ["expected one of"]),
    ({"planner.nope": "1"}, ["unknown key 'planner.nope'"]),
    ({"task.x": "1"}, ["has no sub-keys"]),
])
def test_bad_values_name_the_key_and_expectation(pairs, words):
    with pytest.raises(ConfigError) as err:
        build(Example, pairs, sources=("command line",))
    for word in words:
        assert word in str(err.value)
    assert "command line" in str(err.value)


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_yaml(path)
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_pairs(["steps"])


def test_cli_reports_unknown_command_and_lists_commands(capsys):
    assert cli_main(["fly"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'fly'" in err and "sysid fit" in err
    assert cli_main(["--help"]) == 0
    assert "robot-rl <command>" in capsys.readouterr().out


def test_cli_prints_project_input_errors_in_one_line(capsys, tmp_path, monkeypatch):
    import sys
    import types

    from sim.params import ParamsError

    module = types.ModuleType("robot_rl._cli_probe")

    @dataclass
    class Config:
        path: str = ""

    def run(config):
        if config.path == "crash":
            raise ValueError("a bug, not bad input")
        raise ParamsError(f"{config.path}: field 'parameters': expected a mapping")

    module.Config, module.run = Config, run
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(__import__("robot_rl.cli").cli.COMMANDS, "probe", (module.__name__, "test"))
    assert cli_main(["probe", "path=p.yaml"]) == 2
    assert "p.yaml: field 'parameters'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="a bug"):
        cli_main(["probe", "path=crash"])
