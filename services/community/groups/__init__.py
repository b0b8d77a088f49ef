"""Community: groups."""
