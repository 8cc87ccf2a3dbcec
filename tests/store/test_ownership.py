"""One owner per rig: a rig owned by a live supervisor is refused to another (named, nothing changed);
a gone supervisor's rigs and name are taken over; a clean exit frees them. On both backends."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import update

from store import make_engine
from store.migrate import upgrade
from store.ownership import OwnershipRefused, beat, owners, register, supervisors, unregister
from store.schema import LabSupervisor


@pytest.fixture
def engine(store_url):
    engine = make_engine(store_url, create=True)
    upgrade(engine)
    yield engine
    engine.dispose()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(60)
    return child.pid


def _as_pid(engine, name: str, pid: int) -> None:  # noqa: ANN001
    """Make supervisor ``name`` another process's (this test is one process playing several)."""
    with engine.begin() as c:
        c.execute(update(LabSupervisor).where(LabSupervisor.name == name).values(pid=pid))


def _owned(engine) -> dict[str, str]:  # noqa: ANN001
    return {o.rig_name: o.supervisor_name for o in owners(engine)}


def test_a_rig_owned_by_a_live_supervisor_is_refused_to_another_and_nothing_changes(engine):
    register(engine, "pc1", ["liver1", "liver2"], expiry_s=30)
    _as_pid(engine, "pc1", os.getppid())  # alive, not us
    with pytest.raises(OwnershipRefused, match=r"rig 'liver2' is owned by supervisor 'pc1' \(host .* pid \d+"):
        register(engine, "pc2", ["gut1", "liver2"], expiry_s=30)
    assert _owned(engine) == {"liver1": "pc1", "liver2": "pc1"}
    assert [s.name for s in supervisors(engine)] == ["pc1"]  # pc2 was not registered either
    with pytest.raises(OwnershipRefused, match=r"supervisor 'pc1' .* is running"):
        register(engine, "pc1", ["liver1"], expiry_s=30)  # the same name twice: one supervisor per machine


def test_a_gone_supervisor_is_taken_over_and_a_clean_exit_frees_its_rigs(engine):
    register(engine, "pc1", ["liver1", "liver2"], expiry_s=30)
    _as_pid(engine, "pc1", _dead_pid())  # SIGKILLed: its pid is gone on this host
    register(engine, "pc2", ["liver2"], expiry_s=30)
    assert _owned(engine) == {"liver1": "pc1", "liver2": "pc2"}
    assert beat(engine, "pc2", {"rigs": {}}, expiry_s=30)
    assert not beat(engine, "pc1", {}, expiry_s=30)  # pc1's row names another pid
    health = next(s for s in supervisors(engine) if s.name == "pc2").health
    assert health == {"rigs": {}}
    unregister(engine, "pc2")
    assert _owned(engine) == {"liver1": "pc1"} and [s.name for s in supervisors(engine)] == ["pc1"]
