"""ChipTwin ui layer (see DESIGN.md)."""
