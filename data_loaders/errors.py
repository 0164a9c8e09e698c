"""The one exception type users see.

Every stage raises `InputError` for bad input (a missing file, a malformed column, an unknown
config key). Its message is one line that names the file, line, column or field and says what to
do. The CLI prints it and exits with code 2; nothing is written.
"""


class InputError(ValueError):
    """Bad user input: a one-line, actionable message; the CLI exits with code 2."""

    exit_code = 2
