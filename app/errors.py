"""Exception types for problems a user can meet: a mistake they can fix, or a run directory that was altered."""


class UserError(Exception):
    """A problem the user can fix; the CLI prints its one-line message and exits 2."""

    exit_code = 2


class IntegrityError(UserError):
    """A run directory's file no longer matches its manifest; the CLI names it and exits 1."""

    exit_code = 1


class WriteFailed(UserError):
    """A write ran out of space (or into a file size limit); the message names the file."""


def one_line(text: str) -> str:
    """`text` with every unprintable character (a newline in a JSON key, say) escaped, so an error
    quoting a stranger's input stays one line."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
