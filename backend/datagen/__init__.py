"""Realistic demo data, fast: users, multilingual products, orders with items.

`python -m backend.datagen --orders 1000000` or `flask --app backend seed ...`;
from Python, `generate(database_url, ...)`. The bulk path is COPY on PostgreSQL
and executemany on SQLite, in one transaction.
"""
from backend.datagen.errors import DatagenError
from backend.datagen.generator import DEMO_PASSWORD, Summary, generate

__all__ = ["DEMO_PASSWORD", "DatagenError", "Summary", "generate"]
