"""`robot-rl <group> --help` lists the group's subcommands (sysid, calibrate) instead of "unknown command"."""
from __future__ import annotations

import pytest

from robot_rl.cli import COMMANDS, main


@pytest.mark.parametrize("group", ["sysid", "calibrate"])
@pytest.mark.parametrize("flag", [["--help"], ["-h"], []])
def test_group_help_lists_every_subcommand(group, flag, capsys):
    assert main([group, *flag]) == 0
    out = capsys.readouterr().out
    subcommands = [name.split(" ", 1)[1] for name in COMMANDS if name.startswith(f"{group} ")]
    assert len(subcommands) >= 2
    for sub in subcommands:
        assert f"  {sub} " in out
    assert f"robot-rl {group} <subcommand>" in out


def test_unknown_subcommand_names_it_and_lists_the_group(capsys):
    assert main(["sysid", "excitee"]) == 2
    err = capsys.readouterr().err
    assert "unknown sysid subcommand 'excitee'" in err
    assert "  excite " in err and "  fit " in err


def test_subcommand_help_still_lists_its_keys(capsys):
    assert main(["sysid", "fit", "--help"]) == 0
    assert "keys and defaults" in capsys.readouterr().out


def test_unknown_command_is_still_refused(capsys):
    assert main(["nonsense"]) == 2
    assert "unknown command 'nonsense'" in capsys.readouterr().err
