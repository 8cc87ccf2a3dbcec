"""The rig file's shape, as pydantic models (types, required keys, no unknown keys).

Cross-checks that need the whole rig (duplicate addresses, missing references, units,
device ranges) live in ``rig_validate``; line numbers come from ``rig_toml``. Quantities
are strings with units (``"50 uL/min"``), converted with the program's pint registry.

Every number must be finite (``allow_inf_nan=False``: TOML has ``nan`` and ``inf``) and
within what the hardware can mean: a TCP port is 1–65535, a register address 0–65535, a
poll period between 50 ms and a week. The bounds are wide on purpose: they refuse
nonsense, not unusual rigs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DRIVERS = ("ne1000", "reglo_icc", "teer", "visiferm_do", "ph_arc", "modbus_sensor")
SERIAL_DRIVERS = ("ne1000", "reglo_icc", "teer")
MODBUS_DRIVERS = ("visiferm_do", "ph_arc", "modbus_sensor")
PUMP_DRIVERS = ("ne1000", "reglo_icc")
SAFE_ACTIONS = ("stop", "none")
MIN_POLL_PERIOD_S = 0.05  # faster than any of these devices answers
MAX_POLL_PERIOD_S = 7 * 86400.0  # a week: slower is a channel nobody reads
MAX_NAME_LENGTH = 64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=r"^[^\x00-\x1f]+$")]


class RigInfo(_Strict):
    name: Name
    description: str = ""


class ChipLimitsSpec(_Strict):
    max_flow: str | None = None  # e.g. "50 uL/min"
    max_dose_volume: str | None = None  # e.g. "0.2 mL"
    max_concentration: str | None = None  # e.g. "200 uM"


class ChipSpec(_Strict):
    name: Name
    organ: Literal["liver"] = "liver"
    v_medium_ml: float = Field(gt=0, le=1000)  # a chip holds µL to mL; a litre is no chip
    v_cell_ml: float = Field(gt=0, le=1000)
    n_cells_million: float = Field(gt=0, le=1e5)
    kla_per_h: float | None = Field(default=None, gt=0, le=1e4)
    limits: ChipLimitsSpec = ChipLimitsSpec()

    @property
    def model(self) -> str:
        return f"{self.organ}_chip"


class ConnectionSpec(_Strict):
    """``kind`` serial (NE-1000, Reglo, TEER), tcp or rtu (Modbus)."""

    kind: Literal["serial", "tcp", "rtu"]
    port: str | int | None = None  # serial/rtu: device path; tcp: TCP port number
    usb_serial: str | None = None  # serial/rtu: find the adapter by USB serial number …
    usb_vid_pid: str | None = None  # … or by "0403:6001"
    baud: int | None = Field(default=None, gt=0, le=4_000_000)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] | None = None
    address: int | None = None  # NE-1000 0–99 (daisy chain), Reglo ICC channel 1–8
    host: str | None = Field(default=None, min_length=1, max_length=253)  # tcp
    unit_id: int | None = None  # Modbus slave / unit id, 1–247
    word_order: Literal["low_word_first", "high_word_first"] = "low_word_first"
    function: Literal[3, 4] = 3

    @field_validator("port", mode="before")
    @classmethod
    def _port_in_range(cls, port: str | int | None) -> str | int | None:
        if isinstance(port, bool):
            raise ValueError("port must be a device path (serial/rtu) or a TCP port number, not true/false")
        if isinstance(port, int) and not 1 <= port <= 65535:
            raise ValueError(f"TCP port {port} is outside 1–65535")
        if isinstance(port, str) and not port.strip():
            raise ValueError('port is empty; write the device path, e.g. "/dev/ttyUSB0"')
        return port


class InstrumentLimitsSpec(_Strict):
    max_rate: str | None = None  # pumps: e.g. "1 mL/min"
    max_volume: str | None = None  # pumps: largest single dispense, e.g. "0.5 mL"


class RegisterSpec(_Strict):
    name: Name
    quantity: Name
    address: int = Field(ge=0, le=65535)  # zero-based Modbus register address
    type: Literal["uint16", "int16", "uint32", "int32", "float32"] = "uint16"
    unit: str = "dimensionless"
    scale: float = 1.0
    offset: float = 0.0
    word_order: Literal["low_word_first", "high_word_first"] = "high_word_first"
    function: Literal[3, 4] = 3
    plausible: tuple[float, float] | None = None

    @field_validator("scale")
    @classmethod
    def _scale_not_zero(cls, scale: float) -> float:
        if scale == 0:
            raise ValueError("scale 0 makes every reading the offset; give the register's scale (e.g. 0.1)")
        return scale


class InstrumentSpec(_Strict):
    name: Name
    driver: str
    connection: ConnectionSpec
    limits: InstrumentLimitsSpec = InstrumentLimitsSpec()
    # pumps
    feeds: list[str] = []  # chip(s) this pump doses into
    syringe_diameter_mm: float | None = Field(default=None, gt=0)
    drug_concentration_um: float = Field(default=0.0, ge=0, le=1e6)  # of the syringe/reservoir (≤ 1 M)
    # TEER meter
    wells: list[Name] = []
    # VisiFerm DO
    do_unit: Literal["%-sat", "mg/L"] = "%-sat"
    # modbus_sensor
    registers: list[RegisterSpec] = []


class ChannelSpec(_Strict):
    name: Name
    instrument: str
    measurement: str
    chip: str | None = None
    unit: str
    poll_period_s: float = Field(ge=MIN_POLL_PERIOD_S, le=MAX_POLL_PERIOD_S)
    plausible: tuple[float, float] | None = None


class RigFile(_Strict):
    rig: RigInfo
    chips: list[ChipSpec] = []
    instruments: list[InstrumentSpec] = []
    channels: list[ChannelSpec] = []
    safe_state: dict[str, Literal["stop", "none"]] = {}
