"""Migration safety around `run_migrations.py`: rehearse on a throwaway copy,
back up before applying. (Linting revision scripts is backend.lint; the two
options and the rehearsal's report are in backend.cli.)

    databases.py  copies (CREATE DATABASE ... TEMPLATE, pg_dump | pg_restore, SQLite backup API)
    backup.py     --backup DIR
    timing.py     per-revision transaction times and lock_timeout settings
    locks.py      pg_locks sampling: which table locks each revision held, how long
    rehearsal.py  --rehearse
"""
