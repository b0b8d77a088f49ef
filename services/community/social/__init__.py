"""Community: social."""
