"""The gateway's GraphQL schema, one module per area; `schema.root` puts them together."""
