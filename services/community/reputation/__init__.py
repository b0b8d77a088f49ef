"""Community: reputation."""
