"""The member's view of their points: balance, what expires soon, last activity."""
