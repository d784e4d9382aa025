"""The rws ASGI server (HTTP/1.1, HTTP/2, HTTP/3, WebSocket) and its small web framework.

Not built yet: this package is a skeleton with no public API.
"""
