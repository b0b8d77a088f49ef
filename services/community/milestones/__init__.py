"""Community: milestones."""
