"""ChipTwin calibration layer (see DESIGN.md)."""
