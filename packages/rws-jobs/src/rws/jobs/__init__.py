"""Background jobs with in-memory, SQL and Redis queues.

Not built yet: this package is a skeleton with no public API.
"""
