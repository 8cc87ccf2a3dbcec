"""The rig file's shape, as pydantic models (types, required keys, no unknown keys).

Cross-checks that need the whole rig (duplicate addresses, missing references, units,
device ranges) live in ``rig_validate``; line numbers come from ``rig_toml``. Quantities
are strings with units (``"50 uL/min"``), converted with the program's pint registry.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DRIVERS = ("ne1000", "reglo_icc", "teer", "visiferm_do", "ph_arc", "modbus_sensor")
SERIAL_DRIVERS = ("ne1000", "reglo_icc", "teer")
MODBUS_DRIVERS = ("visiferm_do", "ph_arc", "modbus_sensor")
PUMP_DRIVERS = ("ne1000", "reglo_icc")
SAFE_ACTIONS = ("stop", "none")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RigInfo(_Strict):
    name: str = Field(min_length=1)
    description: str = ""


class ChipLimitsSpec(_Strict):
    max_flow: str | None = None            # e.g. "50 uL/min"
    max_dose_volume: str | None = None     # e.g. "0.2 mL"
    max_concentration: str | None = None   # e.g. "200 uM"


class ChipSpec(_Strict):
    name: str = Field(min_length=1)
    organ: Literal["liver"] = "liver"
    v_medium_ml: float = Field(gt=0)
    v_cell_ml: float = Field(gt=0)
    n_cells_million: float = Field(gt=0)
    kla_per_h: float | None = Field(default=None, gt=0)
    limits: ChipLimitsSpec = ChipLimitsSpec()

    @property
    def model(self) -> str:
        return f"{self.organ}_chip"


class ConnectionSpec(_Strict):
    """``kind`` serial (NE-1000, Reglo, TEER), tcp or rtu (Modbus)."""

    kind: Literal["serial", "tcp", "rtu"]
    port: str | int | None = None      # serial/rtu: device path; tcp: TCP port number
    usb_serial: str | None = None      # serial/rtu: find the adapter by USB serial number …
    usb_vid_pid: str | None = None     # … or by "0403:6001"
    baud: int | None = Field(default=None, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] | None = None
    address: int | None = None         # NE-1000 0–99 (daisy chain), Reglo ICC channel 1–8
    host: str | None = None            # tcp
    unit_id: int | None = None         # Modbus slave / unit id, 1–247
    word_order: Literal["low_word_first", "high_word_first"] = "low_word_first"
    function: Literal[3, 4] = 3


class InstrumentLimitsSpec(_Strict):
    max_rate: str | None = None        # pumps: e.g. "1 mL/min"
    max_volume: str | None = None      # pumps: largest single dispense, e.g. "0.5 mL"


class RegisterSpec(_Strict):
    name: str
    quantity: str
    address: int
    type: Literal["uint16", "int16", "uint32", "int32", "float32"] = "uint16"
    unit: str = "dimensionless"
    scale: float = 1.0
    offset: float = 0.0
    word_order: Literal["low_word_first", "high_word_first"] = "high_word_first"
    function: Literal[3, 4] = 3
    plausible: tuple[float, float] | None = None


class InstrumentSpec(_Strict):
    name: str = Field(min_length=1)
    driver: str
    connection: ConnectionSpec
    limits: InstrumentLimitsSpec = InstrumentLimitsSpec()
    # pumps
    feeds: list[str] = []                      # chip(s) this pump doses into
    syringe_diameter_mm: float | None = Field(default=None, gt=0)
    drug_concentration_um: float = Field(default=0.0, ge=0)  # of the syringe/reservoir
    # TEER meter
    wells: list[str] = []
    # VisiFerm DO
    do_unit: Literal["%-sat", "mg/L"] = "%-sat"
    # modbus_sensor
    registers: list[RegisterSpec] = []


class ChannelSpec(_Strict):
    name: str = Field(min_length=1)
    instrument: str
    measurement: str
    chip: str | None = None
    unit: str
    poll_period_s: float = Field(gt=0)
    plausible: tuple[float, float] | None = None


class RigFile(_Strict):
    rig: RigInfo
    chips: list[ChipSpec] = []
    instruments: list[InstrumentSpec] = []
    channels: list[ChannelSpec] = []
    safe_state: dict[str, Literal["stop", "none"]] = {}
