"""Repeated log lines are throttled per key and say how many were held back."""
from hardware.log_throttle import ThrottledLog


def test_one_line_per_period_per_key_with_a_count():
    now = [0.0]
    lines = []
    log = ThrottledLog(period_s=5.0, clock=lambda: now[0])
    for i in range(1000):              # a bad publisher at 1 kHz for 1 s ...
        now[0] = i * 1e-3
        log(lines.append, "goal", "bad goal")
    log(lines.append, "image", "bad image")   # ... does not hide other lines
    now[0] = 5.5
    log(lines.append, "goal", "bad goal")
    assert lines == ["bad goal", "bad image", "bad goal (999 more like this in the last 5.5 s)"]
