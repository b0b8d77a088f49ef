"""The member 360: the journal of consumed events and the projection computed from it."""
