"""The training engine: a collector (environments + an acting strategy) and a learner (agent + batch sampler)
that exchange plain data only (transitions in, weights out), driven by `robot_rl/train.py`."""
