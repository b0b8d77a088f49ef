"""Community: ideas."""
