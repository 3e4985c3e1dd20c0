"""The shop's JSON API: products (localized) and orders."""
