"""The members service: brands, members, profiles, consents and staff API keys."""
