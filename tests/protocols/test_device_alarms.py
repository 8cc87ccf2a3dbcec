"""Device health → alarms: one warning when a channel's device stops answering (or never
answered), one info alarm when it answers again — never one per failed poll."""

from __future__ import annotations

import threading

from protocols.run.acquire import StoreSink


def _sink() -> tuple[StoreSink, list[tuple[str, str, str]]]:
    raised: list[tuple[str, str, str]] = []
    return StoreSink(None, {}, None, alarm=lambda *alarm: raised.append(alarm)), raised  # type: ignore[arg-type]


def test_one_alarm_per_transition() -> None:
    sink, raised = _sink()
    for error in ["", "", "DeviceTimeout: no reply", "DeviceTimeout: no reply", "DeviceLost: lost", "", ""]:
        sink.health("chip1_o2", error)
    assert [(severity, source) for severity, source, _ in raised] == [
        ("warning", "instrument:chip1_o2"),
        ("info", "instrument:chip1_o2"),
    ]
    assert "DeviceTimeout: no reply" in raised[0][2] and "answers again" in raised[1][2]


def test_a_device_that_never_answered_is_alarmed_at_its_first_failed_poll() -> None:
    sink, raised = _sink()
    sink.health("pressure", "TransportError: connection refused")
    assert raised and raised[0][0] == "warning" and "connection refused" in raised[0][2]
    assert sink.failing == {"pressure"}


def test_channels_are_independent_and_concurrent_polls_alarm_once() -> None:
    sink, raised = _sink()
    threads = [threading.Thread(target=lambda: [sink.health("a", "down") for _ in range(200)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sink.health("b", "")
    assert [source for _, source, _ in raised] == ["instrument:a"]
