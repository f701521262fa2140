"""`make demo` (`python -m robot_rl.demo [key=value ...]`): train TD-MPC2 on panda-reach on the CPU in a few
minutes (robot_rl/presets/demo.yaml) and print the success rate. Extra key=value pairs override the preset."""
from __future__ import annotations

import sys
from pathlib import Path

from robot_rl.overrides import ConfigError, build, load_yaml, parse_pairs

PRESET = Path(__file__).parent / "presets" / "demo.yaml"


def main(argv: list[str] | None = None) -> int:
    from robot_rl.train import Config, train

    try:
        config = build(Config, load_yaml(PRESET), parse_pairs(sys.argv[1:] if argv is None else argv),
                       sources=(str(PRESET), "command line"))
    except ConfigError as err:
        print(f"robot_rl.demo: {err}", file=sys.stderr)
        return 2
    print(f"training {config.task} for {config.steps} steps on the CPU (preset {PRESET.name}) -> {config.out}")
    result = train(config)
    if result is None:
        return 2
    print(f"demo: {config.task} success rate {100 * result['success']:.0f}% over {config.eval_episodes} "
          f"evaluation episodes after {result['step']} steps; checkpoint {config.out}/agent.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
