"""Create Alembic revisions in alembic/versions/:

    python create_migration.py generate -m "add nickname to users"   # from model changes
    python create_migration.py generate --empty -m "backfill slugs"   # blank, to edit by hand
    python create_migration.py merge [-m "merge branches"]            # join several heads
"""
import click

from backend.schema import commands


@click.group()
def cli() -> None:
    """Create Alembic revisions."""


@cli.command()
@click.option("-m", "--message", required=True, help="What the revision changes.")
@click.option("--empty", is_flag=True, help="A blank revision, no autogenerate (needs no database).")
@click.option("--database-url", metavar="URL", help="Database to compare with (default: DATABASE_URL).")
@commands.one_line_errors
def generate(message: str, empty: bool, database_url: str | None) -> None:
    """Autogenerate a revision from the differences between the models and the database."""
    if empty:
        revision = commands.create_empty_revision(message)
    else:
        revision = commands.autogenerate_revision(message, commands.resolve_database_url(database_url))
    commands.report_new_revision(revision, expect_operations=not empty)


@cli.command()
@click.option("-m", "--message", default=commands.DEFAULT_MERGE_MESSAGE, show_default=True)
@commands.one_line_errors
def merge(message: str) -> None:
    """Create a merge revision of all current heads."""
    commands.report_new_revision(commands.merge_heads(message), expect_operations=False)


if __name__ == "__main__":
    cli()
