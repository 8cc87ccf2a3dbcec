"""The OPC UA endpoint (issue #13): the store's rigs, chips, channels, runs and alarms, typed with
LADS (OPC 30500; lads.py), with Pause/Resume/Abort methods that write the panel's run requests and
alarms as acknowledgeable AlarmConditionType conditions (alarms.py), over Basic256Sha256
Sign/SignAndEncrypt (security.py).

``python -m ui.endpoints.opcua --db URL --endpoint opc.tcp://HOST:PORT [--anonymous read|off]
[--security sign-encrypt,sign[,none]] [--certificate-dir DIR]``; see docs/opcua.md.
"""
