"""ChipTwin protocols layer (see DESIGN.md)."""
