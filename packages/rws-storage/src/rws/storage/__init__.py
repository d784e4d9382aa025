"""One object-storage interface for local disk, memory and S3-compatible services.

Not built yet: this package is a skeleton with no public API.
"""
