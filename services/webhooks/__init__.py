"""The webhooks service: endpoints in CRMs and other tools, and signed deliveries to them on the
Standard Webhooks spec (standardwebhooks.com)."""
