"""Migration safety around `run_migrations.py`: rehearse on a throwaway copy,
back up before applying. (Linting revision scripts is backend.lint.)

    databases.py  copies (CREATE DATABASE ... TEMPLATE, pg_dump | pg_restore, SQLite backup API)
    backup.py     --backup DIR
    timing.py     per-revision transaction times, pg_locks sampling
    rehearsal.py  --rehearse
    cli.py        the two options, added to run_migrations.py by one decorator
"""
