"""Errors a user can cause: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """A problem with the user's input or setup (bad file, bad option, missing device)."""
