"""The backfill operations API (api.py, openapi.py), the status page (page.py) and
what both show of the engine (view.py)."""
