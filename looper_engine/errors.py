"""Error kinds. A UserError is something a user caused (a flag, a file, a spec): the CLI
prints its message as one line and exits with code 2. Everything else is a bug and raises."""


class UserError(Exception):
    """Bad input from a user: printed as one clear line, exit code 2."""


class BadModelSpec(UserError):
    """A model spec string that names no known backend or is malformed."""


class BackendError(Exception):
    """A backend failed while serving a request (server gone, stream cut, model missing).

    The agent ends the episode as errored with this message as the reason."""
