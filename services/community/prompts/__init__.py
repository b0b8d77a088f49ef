"""Community: prompts."""
