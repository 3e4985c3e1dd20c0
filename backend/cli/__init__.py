"""What the entry scripts (run.py, run_migrations.py, create_migration.py) do, and
how it is shown on the command line: the scripts only parse options and call here."""
