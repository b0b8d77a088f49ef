"""Bulk loading of community history: posts, comments, reactions and follows."""
