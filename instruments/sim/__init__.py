"""Simulated devices that speak the real protocols over real ptys and TCP sockets."""
