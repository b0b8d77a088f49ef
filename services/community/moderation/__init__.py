"""Community: moderation."""
