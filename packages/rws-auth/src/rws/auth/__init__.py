"""JWT, htpasswd, sessions, signed and encrypted cookies, forward-auth.

Not built yet: this package is a skeleton with no public API.
"""
