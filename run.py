"""Development server: `python run.py [--host H] [--port P] [--no-migrate]`.

Pending migrations are applied first (under the schema lock, like run_migrations.py),
so several replicas started at once never race, and the app never sees an old schema.
"""
import click

from backend.cli.configuration import ensure_port_free, load_config
from backend.cli.errors import one_line_errors
from backend.cli.reports import report_upgrade


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--migrate/--no-migrate", default=True, help="Apply pending migrations before serving (default: yes).")
@click.option("--database-url", metavar="URL", help="Database to use (default: DATABASE_URL).")
@one_line_errors
def main(host: str, port: int, migrate: bool, database_url: str | None) -> None:
    """Apply pending migrations, then serve the app with Flask's development server."""
    config = load_config(database_url)
    ensure_port_free(host, port)
    if migrate:
        report_upgrade(config.database_url)

    from wsgi import create_app  # after migrating: the app may read the schema at start-up

    create_app(config).run(host=host, port=port, debug=False, use_reloader=False)


if __name__ == "__main__":
    main()
