"""How a time on a run's clock is read (#12 item 3): run time for a simulated run, dates for a real one."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ui.run_clock import RunClock, clock_of, date_text, duration_text, run_time_text

START = 1.8e9


def test_a_simulated_run_reads_in_run_time_and_maps_back_to_the_wall_clock() -> None:
    clock = RunClock(started_s=START, started_wall_s=START - 100.0, rate=3600.0)
    later = START + 12.5 * 3600  # 12.5 h of run time = 12.5 wall seconds at 3600×
    assert clock.simulated
    assert clock.label(later) == "run +12 h 30 min"
    assert clock.wall_s(later) == pytest.approx(START - 100.0 + 12.5)
    assert clock.age_s(later, now_wall_s=START) == pytest.approx(100.0 - 12.5)
    assert clock.age_s(START + 1e9, now_wall_s=START) == 0.0  # never a negative age


def test_a_real_run_reads_in_dates() -> None:
    clock = RunClock(started_s=START, started_wall_s=START, rate=1.0)
    assert not clock.simulated
    assert clock.label(START) == date_text(START) == "2027-01-15 08:00:00 UTC"
    assert clock.age_s(START + 10, now_wall_s=START + 70) == pytest.approx(60.0)


def test_the_clock_of_a_run_falls_back_for_runs_stored_before_wall_times() -> None:
    real = SimpleNamespace(started_utc_s=START, started_wall_utc_s=None, clock_rate=1.0)
    simulated = SimpleNamespace(started_utc_s=START, started_wall_utc_s=None, clock_rate=60.0)
    assert clock_of(real) == RunClock(START, START, 1.0)
    old = clock_of(simulated)
    assert old is not None and old.wall_s(START + 60) is None and old.age_s(START + 60) is None
    assert old.label(START + 90 * 60) == "run +1 h 30 min"
    assert clock_of(SimpleNamespace(started_utc_s=None, started_wall_utc_s=None, clock_rate=1.0)) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "+0 min"), (45 * 60, "+45 min"), (3 * 86400 + 4 * 3600 + 5 * 60, "+3 d 4 h 05 min"), (-120, "−2 min")],
)
def test_run_time_text(seconds: float, text: str) -> None:
    assert run_time_text(seconds) == text


def test_duration_text() -> None:
    assert [duration_text(s) for s in (42, 185, 7800, None)] == ["42 s", "3 min 05 s", "2 h 10 min", "—"]
