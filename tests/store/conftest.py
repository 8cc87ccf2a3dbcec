from __future__ import annotations

import pytest
from sqlalchemy import Engine

from store import make_engine
from store.engine import session
from store.migrate import upgrade
from store.schema import Channel, Chip, Rig


@pytest.fixture
def engine(store_url: str) -> Engine:
    engine = make_engine(store_url, create=True)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def channels(engine: Engine) -> dict[str, int]:
    """A rig with one chip and three channels; returns channel ids by name."""
    with session(engine) as s:
        rig = Rig(name="bench-1", created_utc_s=0.0)
        s.add(rig)
        s.flush()
        chip = Chip(rig_id=rig.id, name="liver-1", organ="liver", v_medium_ml=1.0, v_cell_ml=0.05, n_cells_million=1.0)
        s.add(chip)
        s.flush()
        made = [
            Channel(rig_id=rig.id, chip_id=chip.id, name="o2", quantity="oxygen", unit="percent"),
            Channel(rig_id=rig.id, chip_id=chip.id, name="pressure", quantity="pressure", unit="mbar"),
            Channel(rig_id=rig.id, chip_id=chip.id, name="temperature", quantity="temperature", unit="degC"),
        ]
        s.add_all(made)
        s.commit()
        return {c.name: c.id for c in made}
