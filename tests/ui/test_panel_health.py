"""The overview's instrument health (#12 item 4, in part): the state the runner recorded, and the
last contact (the newest reading of any of the instrument's channels); never-seen ones say so."""

from __future__ import annotations

from sqlalchemy import insert

from store import make_engine
from store.schema import Channel, Instrument
from tests.ui.test_panel_support import T0, app_signed_in, charts, lab, on_page  # noqa: F401 (lab is a fixture)
from ui.run_clock import date_text


def test_each_instrument_shows_its_state_and_last_contact(lab):
    engine = make_engine(lab.url)
    with engine.begin() as c:  # an instrument no runner has used yet
        c.execute(insert(Instrument).values(rig_id=lab.rig_id, name="teer-1", driver="teer", address="/dev/ttyUSB1"))
    engine.dispose()
    app = app_signed_in("sam")
    assert {m.label: m.value for m in app.metric}["instruments not ok"] == "1"  # lost counts; never seen does not
    table = app.dataframe[1].value.set_index("name")
    assert table.loc["o2-bus", "state"] == "🔴 lost" and table.loc["pump-1", "state"] == "🟢 ok"
    assert table.loc["teer-1", "state"] == "⚪ not seen by a runner yet"
    # the sensor's channels were read until T0 + 7190 s; the pump and the new instrument have no reading
    assert table.loc["o2-bus", "last contact"] == date_text(T0 + 7190)  # a real run: a date
    assert table["last contact"].isna().sum() == 2


def test_a_channel_without_readings_says_why_instead_of_an_empty_chart(lab):
    engine = make_engine(lab.url)
    with engine.begin() as c:
        for name, quantity, unit in (("liver-1/dispensed", "dispensed", "uL"), ("liver-1/ph", "ph", "pH")):
            c.execute(
                insert(Channel).values(
                    rig_id=lab.rig_id, chip_id=lab.chip_ids[0], name=name, quantity=quantity, unit=unit
                )
            )
    engine.dispose()
    app = on_page(app_signed_in("tina"), "live")
    assert len(charts(app)) == 6  # the channels with readings still plot
    why = [i.value for i in app.info]
    assert any(w.startswith("liver-1/dispensed: no dose in the last 6 h") and "after each dose" in w for w in why), why
    assert any(w.startswith("liver-1/ph: no reading in the last 6 h") and "has not answered" in w for w in why), why
