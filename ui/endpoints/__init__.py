"""Endpoints the lab's other systems speak to: OPC UA (opcua/) and SiLA 2 (sila/).

Each is its own process, started by the lab supervisor or by hand; each reads and writes the
store through the same repositories and validators as the panel and the CLI.
"""
