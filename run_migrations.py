"""Apply pending Alembic revisions and report them: `python run_migrations.py [--status]`.

Safe to start from several processes at once: env.py holds the schema lock, so one
process applies the revisions and the others wait, then find nothing to do.
"""
import click

from backend.schema import commands


@click.command()
@click.option("--database-url", metavar="URL", help="Database to migrate (default: DATABASE_URL).")
@click.option("--status", is_flag=True, help="Show the current revision, the head and what is pending; change nothing.")
@commands.one_line_errors
def main(database_url: str | None, status: bool) -> None:
    """Upgrade the database to the head revision."""
    config = commands.load_config(database_url)
    if status:
        commands.report_status(config.database_url)
    else:
        commands.report_upgrade(config.database_url)


if __name__ == "__main__":
    main()
