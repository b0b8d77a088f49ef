"""The shared kernel: settings, database, events, auth, errors and the app factory.

Every service imports from here and nowhere else for cross-cutting concerns.
"""
