"""The rewards service: points ledger, tiers, earning rules, campaigns, perks and drops."""
