"""Live news for a member's open sockets: events turned into small messages on the member's
Redis pub/sub channel (`publisher`, run by the workers) and read back by the subscriptions of
every gateway process (`channels`). `messages` is the shape both sides agree on."""
