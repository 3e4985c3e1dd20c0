"""The shop's services: plain functions over a SQLAlchemy session, with no Flask
import, so that the web views stay thin and the CLI or the worker can reuse them.

Each writing service is its own transaction (see `transaction.unit_of_work`) and
reports problems as `errors.ShopError` subclasses carrying an HTTP-style status.
"""
from backend.shop.errors import Conflict, Forbidden, InvalidInput, NotFound, ShopError, Unprocessable

__all__ = ["Conflict", "Forbidden", "InvalidInput", "NotFound", "ShopError", "Unprocessable"]
