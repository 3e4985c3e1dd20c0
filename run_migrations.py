"""Apply pending Alembic revisions, and with --batched the data backfills too.

    python run_migrations.py                  # schema to head, print what was applied
    python run_migrations.py --batched        # ... and finish the backfills in batches
    python run_migrations.py --status         # revisions and backfill runs; change nothing
    python run_migrations.py --rehearse       # all of it on a throwaway copy: times, locks, rows/s
    python run_migrations.py --backup DIR     # back up first (with or without --batched)
    python run_migrations.py --rerun NAME     # a new run of a finished backfill, then as --batched --only NAME

Safe to start from several processes at once: env.py holds the schema lock, so one
process applies the revisions and the others wait, then find nothing to do; a
backfill run is driven by one process at a time (its lease).
"""
import click

from backend.cli import controls as run_controls, reports, rerun as reruns
from backend.cli.configuration import load_config
from backend.cli.errors import one_line_errors
from backend.migrations.errors import CommandFailed
from backend.cli.safety_options import safety_options
from wiring import celery_dispatcher, transition_notifier


@click.command()
@click.option("--database-url", metavar="URL", help="Database to migrate (default: DATABASE_URL).")
@click.option("--status", is_flag=True, help="Show revisions and backfill runs; change nothing.")
@click.option("--batched", is_flag=True,
              help="Also run the backfills in batches: those a revision waits for, then the rest at head.")
@click.option("--only", "only", multiple=True, metavar="NAME",
              help="With --batched or --status: only these backfills (repeatable). Gates still finish theirs.")
@click.option("--no-wait", is_flag=True, help="With --batched and a broker: dispatch to the workers and exit.")
@click.option("--in-process", is_flag=True, help="With --batched: run batches here even if CELERY_BROKER_URL is set.")
@click.option("--rerun", "rerun", metavar="NAME",
              help="A new run of a backfill whose last run finished, then as --batched --only NAME.")
@click.option("--yes", is_flag=True, help="With --rerun: do not ask for confirmation (needed without a terminal).")
@click.option("--pause", "pause", metavar="RUN", help="Pause a run (id, or backfill name for its latest run).")
@click.option("--resume", "resume", metavar="RUN", help="Resume a paused run from its cursor.")
@click.option("--cancel", "cancel", metavar="RUN", help="Cancel a run for good.")
@click.option("--retry", "retry", metavar="RUN", help="Retry the failed batches of a failed run.")
@click.option("--reason", metavar="TEXT", help="Why (with --pause or --cancel), kept in the transition log.")
@click.option("--log", "log", metavar="RUN", help="Show a run's transition log.")
@click.option("--dry-run", "dry_run", metavar="NAME",
              help="Estimate a backfill: sample batches rolled back, rows/s, duration, windows needed.")
@safety_options  # --rehearse, --backup DIR
@one_line_errors
def main(database_url, status, batched, only, no_wait, in_process, rerun, yes, pause, resume, cancel, retry, reason,
         log, dry_run) -> None:
    """Upgrade the database to the head revision."""
    config = load_config(database_url)
    controls = {"pause": pause, "resume": resume, "cancel": cancel, "retry": retry}
    chosen = [name for name, ref in controls.items() if ref is not None]
    if len(chosen) + (log is not None) + (dry_run is not None) + (rerun is not None) + bool(status) \
            + bool(batched) > 1:
        raise CommandFailed("choose one of --status, --batched, --rerun, --pause, --resume, --cancel, --retry, "
                            "--log, --dry-run")
    if (only or no_wait or in_process) and not (batched or status or (rerun is not None and not only)):
        raise CommandFailed("--only, --no-wait and --in-process go with --batched (--no-wait and --in-process "
                            "with --rerun too)")
    if yes and rerun is None:
        raise CommandFailed("--yes goes with --rerun")
    if reason is not None and not (pause or cancel):
        raise CommandFailed("--reason goes with --pause or --cancel")
    if reason is not None and not run_controls.is_storable_reason(reason):
        raise CommandFailed(f"--reason must be text of at most {run_controls.REASON_MAX_LENGTH} "
                                     "characters (no NUL byte, no undecodable bytes)")
    if chosen:
        reports.report_lines(run_controls.control(config, chosen[0], controls[chosen[0]], reason,
                                                  dispatcher=celery_dispatcher(config),
                                                  notifier=transition_notifier(config)))
    elif log is not None:
        reports.report_lines(run_controls.transition_log(config, log))
    elif rerun is not None:
        reports.report_lines(reruns.schedule_rerun(config, rerun, yes=yes))
        reports.report_batched(config, only=(rerun,), no_wait=no_wait,
                               dispatcher=None if in_process else celery_dispatcher(config),
                               notifier=transition_notifier(config))
    elif dry_run is not None:
        reports.report_lines(run_controls.dry_run(config, dry_run))
    elif status:
        reports.report_status(config.database_url)
        reports.report_backfill_runs(config, only)
    elif batched:
        reports.report_batched(config, only=only, no_wait=no_wait,
                               dispatcher=None if in_process else celery_dispatcher(config),
                               notifier=transition_notifier(config))
    else:
        reports.report_upgrade(config.database_url)


if __name__ == "__main__":
    main()
