"""Downstream completeness check: did the sink get every produced reading exactly once?

The poller numbers each channel's readings 0, 1, 2, … (``Reading.seq``) and counts them
(``ChannelStats.readings``). Given what a sink received, :func:`check_sequences` lists
every missing, duplicated or out-of-order sequence number per channel.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from instruments.acquisition.types import PollerStats, Reading


@dataclass
class SequenceReport:
    received: dict[str, int] = field(default_factory=dict)
    produced: dict[str, int] = field(default_factory=dict)
    lost: int = 0  # produced but never received
    duplicated: int = 0  # received more than once (extra copies)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_sequences(received: Iterable[Reading], stats: PollerStats) -> SequenceReport:
    """Compare received readings with the poller's counts; ``report.ok`` iff exactly-once, in order."""
    by_channel: dict[str, list[int]] = defaultdict(list)
    for reading in received:
        by_channel[reading.channel].append(reading.seq)
    report = SequenceReport()
    for name in sorted(set(stats.channels) | set(by_channel)):
        seqs = by_channel.get(name, [])
        produced = stats.channels[name].readings if name in stats.channels else 0
        report.received[name], report.produced[name] = len(seqs), produced
        distinct = set(seqs)
        report.lost += len(set(range(produced)) - distinct)
        report.duplicated += len(seqs) - len(distinct)
        report.problems += _channel_problems(name, seqs, produced)
    return report


def _channel_problems(name: str, seqs: list[int], produced: int) -> list[str]:
    problems = []
    duplicates = sorted(seq for seq, n in Counter(seqs).items() if n > 1)
    if duplicates:
        problems.append(f"{name}: duplicated seq {_brief(duplicates)}")
    missing = sorted(set(range(produced)) - set(seqs))
    if missing:
        problems.append(f"{name}: lost seq {_brief(missing)} of {produced} produced")
    extra = sorted(seq for seq in set(seqs) if not 0 <= seq < produced)
    if extra:
        problems.append(f"{name}: seq {_brief(extra)} received but never produced")
    if any(b <= a for a, b in zip(seqs, seqs[1:])) and not duplicates:
        problems.append(f"{name}: readings arrived out of order")
    return problems


def _brief(numbers: list[int], shown: int = 8) -> str:
    text = ", ".join(map(str, numbers[:shown]))
    return text + (f", … ({len(numbers)} in all)" if len(numbers) > shown else "")
