"""The backfills this template ships; importing the package registers them."""
from backend.shipped_backfills import orders_total_cents, translation_slugs, type_changes, users_email_normalized

__all__ = ["orders_total_cents", "translation_slugs", "type_changes", "users_email_normalized"]
