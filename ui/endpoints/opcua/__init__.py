"""The OPC UA endpoint (issue #13): the store's rigs, chips, channels, runs and alarms, shaped after
LADS (OPC 30500), with Pause/Resume/Abort methods that write the panel's run requests.

``python -m ui.endpoints.opcua --db URL --endpoint opc.tcp://HOST:PORT [--anonymous read|off]``;
the address space is described in docs/opcua.md.
"""
