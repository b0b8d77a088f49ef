"""Recommendation models: each fits a users x items matrix and scores any user's rows.

Scoring a user's rows is how new users and new interactions are folded in without retraining.
"""
