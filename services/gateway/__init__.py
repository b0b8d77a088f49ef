"""The gateway: one GraphQL schema for the brand's apps in front of the other services."""
