"""The batched backfill engine.

Long data migrations split into small key ranges that commit one by one, with their
progress kept in the application database. This package has no Flask import: the
HTTP API, the Celery tasks and the command line are thin layers over it.
"""
