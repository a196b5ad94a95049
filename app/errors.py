"""The one exception type for mistakes a user can make (bad spec, bad file, bad state)."""


class UserError(Exception):
    """A problem the user can fix; the CLI prints its one-line message and exits 2."""
