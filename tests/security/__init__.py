"""One module per finding of issue 22 (docs/security.md): each fails if its finding
comes back."""
