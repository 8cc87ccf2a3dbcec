"""The OPC UA endpoint's pieces without a server: units, quality, roles, the command line's errors."""

from __future__ import annotations

import pytest

from store import make_engine
from store.ingest import Quality
from store.migrate import upgrade
from ui.endpoints.opcua.__main__ import endpoint_url, main
from ui.endpoints.opcua.access import Anonymous, ChipTwinUser, StoreUserManager, may_steer
from ui.endpoints.opcua.errors import EndpointError
from ui.endpoints.opcua.server import status_of
from ui.endpoints.opcua.snapshot import ChannelValue
from ui.endpoints.opcua.units import UNECE_NAMESPACE, eu_information
from ui.panel.auth import add_user
from ui.panel.errors import NotAllowed


def test_a_unit_becomes_euinformation_with_its_unece_code():
    percent = eu_information("percent")
    assert (percent.DisplayName.Text, percent.UnitId, percent.NamespaceUri) == ("%", 0x5031, UNECE_NAMESPACE)
    assert eu_information("mbar").UnitId == int.from_bytes(b"MBR", "big")
    teer = eu_information("ohm*cm^2")  # no UNECE code: the symbol stays, the id says "none"
    assert teer.UnitId == -1 and "Ω" in teer.DisplayName.Text
    assert eu_information("not a unit at all").DisplayName.Text == "not a unit at all"


@pytest.mark.parametrize(
    ("quality", "t_utc_s", "status"),
    [
        (0, 1.0, "Good"),
        (int(Quality.STALE), 1.0, "UncertainLastUsableValue"),
        (int(Quality.OUT_OF_RANGE), 1.0, "UncertainEngineeringUnitsExceeded"),
        (int(Quality.DEVICE_ERROR | Quality.STALE), 1.0, "BadDeviceFailure"),
        (int(Quality.SUBSTITUTED), 1.0, "UncertainSubstituteValue"),
        (0, None, "BadWaitingForInitialData"),
    ],
)
def test_quality_bits_become_status_codes(quality, t_utc_s, status):
    assert status_of(ChannelValue(1, t_utc_s, 1.0, quality)).name == status


@pytest.mark.parametrize("url", ["http://h:1", "opc.tcp://host", "opc.tcp://:4840", "opc.tcp://h:port"])
def test_an_endpoint_that_is_not_opc_tcp_host_port_is_refused(url):
    with pytest.raises(EndpointError, match="opc.tcp://HOST:PORT"):
        endpoint_url(url)


def test_the_command_line_reports_a_missing_store_in_one_line(tmp_path, capsys):
    code = main(["--db", f"sqlite:///{tmp_path / 'none.db'}", "--endpoint", "opc.tcp://127.0.0.1:4840"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: there is no store") and err.count("\n") == 1


def test_roles_and_anonymous_map_as_documented(sqlite_url):
    engine = make_engine(sqlite_url, create=True)
    upgrade(engine)
    add_user(engine, "sam", "scientist", "scientist-pw-1")
    add_user(engine, "tina", "technician", "technician-pw-1")
    reading = StoreUserManager(engine, Anonymous.READ)
    assert reading.get_user(None) is not None
    assert StoreUserManager(engine, Anonymous.OFF).get_user(None) is None
    assert reading.get_user(None, "sam", "wrong-password") is None
    sam, tina = reading.get_user(None, "sam", "scientist-pw-1"), reading.get_user(None, "tina", "technician-pw-1")
    assert isinstance(sam, ChipTwinUser) and isinstance(tina, ChipTwinUser)
    assert may_steer(engine, sam).username == "sam"
    with pytest.raises(NotAllowed, match="technician"):
        may_steer(engine, tina)
    with pytest.raises(NotAllowed, match="anonymous"):
        may_steer(engine, reading.get_user(None))
    engine.dispose()
