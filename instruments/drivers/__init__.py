"""Device drivers: each knows only its command set and talks through a ByteTransport.

- ``ne1000``: New Era NE-1000 / NE-500 syringe pump (basic and safe mode)
- ``reglo_icc``: Ismatec Reglo ICC peristaltic pump
- ``teer``: TEER meter speaking the project's own line protocol (docs/teer-protocol.md)
- Modbus devices (Hamilton sensors, generic Modbus TCP) live beside these in their own modules
"""
