"""ChipTwin store layer (see DESIGN.md)."""
