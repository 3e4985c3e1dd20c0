"""The command line, shared by `python -m backend.datagen` and `flask seed`.

`generator_options` declares the options once so that both commands accept exactly
the same ones; `run` turns the generator's errors into one-line click errors
(exit status 1, no traceback).
"""
from __future__ import annotations

from typing import Callable, Sequence

import click

from backend.config import Config, ConfigError
from backend.datagen.errors import DatagenError
from backend.datagen.generator import DEFAULT_BATCH_SIZE, DEFAULT_ORDERS, DEFAULT_PRODUCTS, DEFAULT_USERS, generate

# A billion rows is far past any development or benchmark database; a typo with more
# digits would otherwise fill the disk with WAL before anything is committed.
MAX_COUNT = 1_000_000_000
COUNT = click.IntRange(min=0, max=MAX_COUNT)


def generator_options(command: Callable) -> Callable:
    options = [
        click.option("--database-url", default=None,
                     help="Target database (default: DATABASE_URL, as the app uses)."),
        click.option("--users", type=COUNT, default=DEFAULT_USERS, show_default=True, help="Users to add."),
        click.option("--products", type=COUNT, default=DEFAULT_PRODUCTS, show_default=True,
                     help="Products to add, each translated into every supported locale."),
        click.option("--orders", type=COUNT, default=DEFAULT_ORDERS, show_default=True,
                     help="Orders to add, with 1 to 5 items each."),
        click.option("--seed", type=int, default=None, help="Random seed, for reproducible data."),
        click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True,
                     help="Rows per COPY / executemany chunk."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def run(*, database_url: str, locales: Sequence[str], default_locale: str, users: int, products: int,
        orders: int, seed: int | None, batch_size: int) -> None:
    try:
        summary = generate(database_url, users=users, products=products, orders=orders, seed=seed,
                           batch_size=batch_size, locales=locales, default_locale=default_locale)
    except DatagenError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(summary.line())


@click.command(name="datagen")
@generator_options
def main(database_url: str | None, **options) -> None:
    """Append realistic users, products and orders to the shop database."""
    try:
        config = Config.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    run(database_url=database_url or config.database_url, locales=config.supported_locales,
        default_locale=config.default_locale, **options)
