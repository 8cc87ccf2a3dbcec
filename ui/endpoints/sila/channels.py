"""The Channels feature: every channel with its unit, and the newest reading of one (read-only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sila2.framework import DefinedExecutionError, Feature
from sila2.server import FeatureImplementationBase, SilaServer
from sqlalchemy import Engine

from store.repositories import channels


def iso_utc(t_utc_s: float) -> str:
    """A stored time as ISO 8601 UTC, to the millisecond."""
    return datetime.fromtimestamp(t_utc_s, UTC).isoformat(timespec="milliseconds")


class ChannelsImpl(FeatureImplementationBase):
    def __init__(self, parent_server: SilaServer, feature: Feature, engine: Engine) -> None:
        super().__init__(parent_server)
        self.feature = feature
        self.engine = engine

    def ListChannels(self, *, metadata: Any) -> list[tuple[str, str, str, str, str]]:  # noqa: N802
        return [(c.rig, c.chip, c.channel, c.quantity, c.unit) for c in channels.listing(self.engine)]

    def ReadLatest(self, Rig: str, Channel: str, *, metadata: Any) -> tuple[float, str, str, int]:  # noqa: N802, N803
        found = channels.latest(self.engine, Rig, Channel)
        if found is not None:
            return (found.value, found.unit, iso_utc(found.t_utc_s), found.quality)
        errors = self.feature.defined_execution_errors
        if channels.channel_id(self.engine, Rig, Channel) is not None:
            raise DefinedExecutionError(errors["NoReading"], f"channel {Channel!r} of rig {Rig!r} has no reading yet")
        known = ", ".join(c.channel for c in channels.listing(self.engine) if c.rig == Rig)
        fix = f"use one of: {known}" if known else "see List Channels for the rigs and their channels"
        raise DefinedExecutionError(errors["UnknownChannel"], f"rig {Rig!r} has no channel {Channel!r}; fix: {fix}")
