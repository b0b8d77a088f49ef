"""A member's erasure from the community, run by the members projection on `member.erased`."""
