"""A synthetic beauty brand at scale (issue 5): the world model, its hidden truth, and
`kinfolk simulate`, which loads it through the services' bulk paths."""
