"""Create Alembic revisions in alembic/versions/:

    python create_migration.py generate -m "add nickname to users"   # from model changes
    python create_migration.py generate --empty -m "backfill slugs"   # blank, to edit by hand
    python create_migration.py merge [-m "merge branches"]            # join several heads
    python create_migration.py check [REVISION|FILE ...]               # lint revisions (all by default)

`generate` lints the new revision too and prints its findings (the file is kept).
"""
import click

from backend.cli.configuration import resolve_database_url
from backend.cli.errors import one_line_errors
from backend.cli.reports import report_new_revision
from backend.migrations import revisions
from backend import lint


@click.group()
def cli() -> None:
    """Create Alembic revisions."""


@cli.command()
@click.option("-m", "--message", required=True, help="What the revision changes.")
@click.option("--empty", is_flag=True, help="A blank revision, no autogenerate (needs no database).")
@click.option("--database-url", metavar="URL", help="Database to compare with (default: DATABASE_URL).")
@one_line_errors
def generate(message: str, empty: bool, database_url: str | None) -> None:
    """Autogenerate a revision from the differences between the models and the database."""
    if empty:
        revision = revisions.create_empty_revision(message)
    else:
        revision = revisions.autogenerate_revision(message, resolve_database_url(database_url))
    report_new_revision(revision, expect_operations=not empty)
    lint.report_generated(revision.path)


@cli.command()
@click.option("-m", "--message", default=revisions.DEFAULT_MERGE_MESSAGE, show_default=True)
@one_line_errors
def merge(message: str) -> None:
    """Create a merge revision of all current heads."""
    report_new_revision(revisions.merge_heads(message), expect_operations=False)


@cli.command()
@click.argument("revisions", nargs=-1, metavar="[REVISION|FILE]...")
@one_line_errors
def check(revisions: tuple[str, ...]) -> None:
    """Lint revision scripts for operations unsafe on a live database; exit 1 on an
    unacknowledged finding. Checks every revision in alembic/versions/ by default."""
    if not lint.report_check(revisions):
        raise click.exceptions.Exit(1)


if __name__ == "__main__":
    cli()
