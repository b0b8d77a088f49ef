"""Members' public profiles: what any member of the brand may see about another."""
