"""The `chiptwin` command line, the composition root: one module per command group.

``app`` holds the typer application and ``main``; each other module registers its commands.
Modules import at their top only typer and the standard library, and import what a command
runs inside that command, so `chiptwin --help` starts in a fraction of a second.
"""
