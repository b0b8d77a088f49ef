"""Delivering messages to endpoints: the loop every worker runs, how one attempt is made, and
what follows from its answer."""
