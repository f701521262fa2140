"""E-stop sources (hardware/estop.py): the stop holds until every listed source is alive and released and one of
them resets; a silent source counts as pressed; a stranger (unlisted, or the plain topic) cannot clear it."""
import pytest

from hardware.estop import EstopConfigError, EstopSources, parse_sources


def alive(sources, t, **pressed):
    for name in sources.names:
        sources.heard(name, pressed.get(name, False), t)


def test_holds_until_every_source_has_released_and_a_listed_source_resets():
    s = EstopSources(["pendant", "operator"], heartbeat_timeout_s=0.5)
    assert s.holding(0.0) == ["pendant: not heard yet", "operator: not heard yet"]
    alive(s, 0.0, pendant=True)
    assert s.holding(0.1) == ["pendant: pressed"]
    assert s.reset("operator", 0.1) == (False, "pendant: pressed")
    alive(s, 0.2)
    assert s.holding(0.3) == [] and s.reset("operator", 0.3) == (True, "")


def test_a_silent_source_counts_as_pressed():
    s = EstopSources(["pendant"], heartbeat_timeout_s=0.5)
    alive(s, 1.0)
    assert s.holding(1.5) == []
    assert "silent for 0.60 s" in s.holding(1.6)[0]
    accepted, why = s.reset("pendant", 1.6)
    assert not accepted and "silent" in why


def test_a_stranger_cannot_clear_a_stop():
    s = EstopSources(["operator"], heartbeat_timeout_s=0.5)
    alive(s, 0.0)
    s.press_anonymous()                         # anyone may stop the arm ...
    assert s.holding(0.1) and "plain e-stop topic" in s.holding(0.1)[0]
    accepted, why = s.reset("stranger", 0.1)    # ... but only a listed source resets
    assert not accepted and "not a listed e-stop source" in why
    assert s.holding(0.1)
    assert s.reset("operator", 0.2) == (True, "") and s.holding(0.2) == []


@pytest.mark.parametrize("text, error", [("a,a", "repeat"), ("pen dant", "must be"), ("a/b", "must be")])
def test_bad_source_lists_are_refused(text, error):
    with pytest.raises(EstopConfigError, match=error):
        parse_sources(text)


def test_source_lists_parse_and_timeout_must_be_positive():
    assert parse_sources(" pendant, operator ,") == ("pendant", "operator") and parse_sources("") == ()
    with pytest.raises(EstopConfigError, match="heartbeat"):
        EstopSources(["a"], 0.0)
