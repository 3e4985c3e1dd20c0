"""The one exception the generator raises on purpose.

Its message is a complete sentence for the user; the command line prints it as a
single line and exits with status 1, without a traceback.
"""


class DatagenError(Exception):
    """The database or the options do not allow generating data; the message says why."""
