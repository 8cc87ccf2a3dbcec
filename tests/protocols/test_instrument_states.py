"""Honest status (#12 item 4, in part): the runner copies each instrument's connection state (ok /
degraded / reconnecting / lost) to the store, where the panel reads it, instead of "unknown"."""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select

from instruments.connection import ConnectionState
from protocols.run.health import InstrumentStates
from protocols.run.record import Recorder
from store.engine import make_engine
from store.migrate import upgrade
from store.schema import Instrument, Rig
from tests.protocols.runner_helpers import Background, protocol_text, sim_runner


def _states(engine) -> dict[str, str]:  # noqa: ANN001
    with engine.connect() as c:
        return dict(c.execute(select(Instrument.name, Instrument.connection_state)).all())


def test_states_are_written_when_they_change_and_a_device_without_a_driver_is_lost(tmp_path):
    engine = make_engine(str(tmp_path / "lab.db"), create=True)
    upgrade(engine)
    with engine.begin() as c:
        rig_id = c.execute(Rig.__table__.insert().values(name="r", created_utc_s=0.0)).inserted_primary_key[0]
        ids = {
            name: c.execute(
                Instrument.__table__.insert().values(rig_id=rig_id, name=name, driver="x")
            ).inserted_primary_key[0]
            for name in ("pump", "o2", "teer", "gone")
        }
    pump = SimpleNamespace(connection_state=ConnectionState.OK)
    o2 = SimpleNamespace(connection_state=ConnectionState.OK)
    inbox = SimpleNamespace()  # a device that keeps no connection (an assay inbox): left as it was
    devices = SimpleNamespace(devices={"pump": pump, "o2": o2, "teer": inbox}, failed={"gone": "no port /dev/x"})
    recorder = Recorder(engine, lambda: 0.0)
    writes: list[dict[int, str]] = []
    original = recorder.instrument_states
    recorder.instrument_states = lambda states: (writes.append(states), original(states))  # type: ignore[method-assign]
    states = InstrumentStates(recorder, devices, ids)
    states.observe()
    assert _states(engine) == {"pump": "ok", "o2": "ok", "teer": "unknown", "gone": "lost"}
    states.observe()
    assert len(writes) == 1  # nothing changed: nothing written
    o2.connection_state = ConnectionState.DEGRADED
    states.observe()
    o2.connection_state = ConnectionState.RECONNECTING
    states.observe()
    assert writes[1:] == [{ids["o2"]: "degraded"}, {ids["o2"]: "reconnecting"}]
    assert _states(engine)["o2"] == "reconnecting"


def test_a_run_on_the_simulated_rig_leaves_no_instrument_unknown(tmp_path):
    text = protocol_text('[[steps]]\nkind = "wait"\nduration = "1 h"\n')
    with sim_runner(tmp_path, text, rate=3600.0) as (runner, _sim):
        assert Background(runner).result(30.0) == "done"
        found = _states(runner.ctx.recorder.engine)
    assert found and set(found.values()) == {"ok"}, found
