"""The marketing service: member 360, segments and exports (see `models`)."""
