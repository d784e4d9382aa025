"""A zero-code, TOML-driven reverse proxy and API gateway on rws-http.

Not built yet: this package is a skeleton with no public API.
"""
