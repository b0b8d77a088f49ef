"""Community: posts."""
