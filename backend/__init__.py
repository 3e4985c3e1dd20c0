"""Multilingual shop backend.

`create_app` is imported lazily so that the backfill engine, the Celery worker and
Alembic can import `backend.*` without loading Flask.
"""


def create_app(config=None):
    from backend.web import create_app as _create_app

    return _create_app(config)


__all__ = ["create_app"]
