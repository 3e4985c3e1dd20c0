"""A normalized email for case- and script-insensitive login lookups (0005).

Python per row: Unicode NFKC, casefolding and IDNA encoding of the domain have no
portable SQL equivalent. Revision 0009 (its contract) requires it, then makes the
column NOT NULL and unique: one account per address in any spelling.
"""
from __future__ import annotations

import sqlalchemy as sa

from backend.backfill.registry import register
from backend.backfill.definition import RowBackfill
from backend.text import normalize_email

users = sa.table(
    "users",
    sa.column("id", sa.BigInteger),
    sa.column("email", sa.String),
    sa.column("email_normalized", sa.String),
)


@register
class UsersEmailNormalized(RowBackfill):
    name = "users_email_normalized"
    description = "users.email_normalized = NFKC, casefolded, IDNA domain"
    table = users
    columns = ("id", "email")
    batch_size = 1000

    def pending_filter(self):
        return users.c.email_normalized.is_(None)

    def transform(self, row, context):
        return {"email_normalized": normalize_email(row["email"])}
