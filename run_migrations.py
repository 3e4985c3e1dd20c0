"""Apply pending Alembic revisions, and with --batched the data backfills too.

    python run_migrations.py                  # schema to head, print what was applied
    python run_migrations.py --batched        # ... and finish the backfills in batches
    python run_migrations.py --status         # revisions and backfill runs; change nothing

Safe to start from several processes at once: env.py holds the schema lock, so one
process applies the revisions and the others wait, then find nothing to do; a
backfill run is driven by one process at a time (its lease).
"""
import click

from backend.schema import commands


@click.command()
@click.option("--database-url", metavar="URL", help="Database to migrate (default: DATABASE_URL).")
@click.option("--status", is_flag=True, help="Show revisions and backfill runs; change nothing.")
@click.option("--batched", is_flag=True,
              help="Also run the backfills in batches: those a revision waits for, then the rest at head.")
@click.option("--only", "only", multiple=True, metavar="NAME",
              help="With --batched or --status: only these backfills (repeatable). Gates still finish theirs.")
@click.option("--no-wait", is_flag=True, help="With --batched and a broker: dispatch to the workers and exit.")
@click.option("--in-process", is_flag=True, help="With --batched: run batches here even if CELERY_BROKER_URL is set.")
@commands.one_line_errors
def main(database_url, status, batched, only, no_wait, in_process) -> None:
    """Upgrade the database to the head revision."""
    config = commands.load_config(database_url)
    if (only or no_wait or in_process) and not (batched or status):
        raise click.UsageError("--only, --no-wait and --in-process go with --batched")
    if status:
        commands.report_status(config.database_url)
        commands.report_backfill_runs(config, only)
    elif batched:
        commands.report_batched(config, only=only, no_wait=no_wait, in_process=in_process)
    else:
        commands.report_upgrade(config.database_url)


if __name__ == "__main__":
    main()
