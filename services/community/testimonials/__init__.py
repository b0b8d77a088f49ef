"""Community: testimonials."""
