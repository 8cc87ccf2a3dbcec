"""ChipTwin instruments layer (see DESIGN.md)."""
