"""A whole lab: the run queue over many rigs and the supervisor that starts and keeps their runners."""
