"""Every failure of an entry script as click's one-line `Error: ...` and exit 1."""
from __future__ import annotations

import functools
from typing import Callable

import click

from backend.migrations.errors import error_message


def one_line_errors(func: Callable) -> Callable:
    """Turn any exception into click's one-line `Error: ...` on stderr and exit 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            raise click.ClickException(error_message(exc)) from None

    return wrapper
