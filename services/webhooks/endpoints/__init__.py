"""Webhook endpoints: where messages go, which event types they want, and their secrets."""
