"""Community: experiences."""
