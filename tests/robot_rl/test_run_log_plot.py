"""RunLog draws the learning curve eval.png beside eval.csv at each evaluation, and again on resume."""
from __future__ import annotations

import numpy as np
from matplotlib.image import imread

from robot_rl.run_log import RunLog


def _curve(png) -> np.ndarray:
    return imread(str(png))[..., :3]


def test_eval_png_is_redrawn_at_each_evaluation_and_on_resume(tmp_path):
    log = RunLog(tmp_path, tensorboard=False)
    log.log("train", 10, {"loss": 1.0})
    assert not (tmp_path / "eval.png").exists()     # only the eval stream is plotted
    log.log("eval", 100, {"return": -30.0, "return_std": 3.0, "success": 0.0, "episodes": 4.0})
    first = _curve(tmp_path / "eval.png")
    assert first.shape[0] > 300 and first.shape[1] > 500 and first.std() > 0.05   # a picture, not a blank
    log.log("eval", 200, {"return": -10.0, "return_std": 1.0, "success": 0.75, "episodes": 4.0})
    second = _curve(tmp_path / "eval.png")
    assert second.shape == first.shape and np.abs(second - first).mean() > 1e-3   # redrawn with the new point
    # the success panel: green marker pixels appear once a success rate above 0 was logged
    green = lambda im: np.sum((im[..., 1] > 0.5) & (im[..., 0] < 0.35) & (im[..., 2] < 0.35))  # noqa: E731
    assert green(second) > green(first)
    log.close()
    (tmp_path / "eval.png").unlink()
    RunLog(tmp_path, resume_step=100, tensorboard=False).close()   # resume drops step 200 and redraws
    np.testing.assert_allclose(_curve(tmp_path / "eval.png"), first, atol=1e-6)
