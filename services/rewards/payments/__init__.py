"""Points as payment for what other services sell (an experience's seats): asked for by event,
answered by event, refunded by event."""
