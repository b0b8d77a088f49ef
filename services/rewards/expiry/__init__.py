"""Points expiry: the daily expiry and reminder jobs, and what a member has expiring soon.

See `services.rewards.expiry.service` for the rules.
"""
