"""Building and sending email: SMTP with TLS, templates, dev transports.

Not built yet: this package is a skeleton with no public API.
"""
