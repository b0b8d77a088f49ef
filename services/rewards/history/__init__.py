"""Bulk loading of purchase history (the simulator, a brand's migration from another program):
the same rules as `POST /rewards/v1/purchases`, replayed member by member, written with COPY."""
