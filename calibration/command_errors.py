"""The error a `robot-rl sysid` command reports to the user as a one-line message and exit code 2 (calibration/
may not import robot_rl, whose ConfigError plays this part for the other commands)."""


class CommandError(ValueError):
    pass
