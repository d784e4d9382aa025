"""An async ORM for SQLite, PostgreSQL and MySQL/MariaDB.

Not built yet: this package is a skeleton with no public API.
"""
