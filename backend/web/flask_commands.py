"""Flask CLI commands: `flask --app backend seed`, the data generator with the app's
configuration (database and supported locales)."""
from __future__ import annotations

from flask import Flask

from backend.datagen.command import generator_options, run


def register_cli(app: Flask) -> None:
    @app.cli.command("seed")
    @generator_options
    def seed_command(database_url: str | None, **options) -> None:
        """Append realistic users, products and orders to the shop database."""
        config = app.config["SHOP"]
        run(database_url=database_url or config.database_url, locales=config.supported_locales,
            default_locale=config.default_locale, **options)
