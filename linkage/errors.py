"""Exceptions that map to the job exit codes: 2 for bad configuration or input, 1 otherwise."""


class LinkageError(Exception):
    """Base for errors the jobs report as one clear line instead of a traceback."""

    exit_code = 1


class ConfigError(LinkageError):
    """Configuration is wrong: names the file or --set, the key and what is allowed."""

    exit_code = 2


class InputError(LinkageError):
    """Input data is unusable as a whole (missing file or column); names the file and field."""

    exit_code = 2


class EnvironmentSetupError(LinkageError):
    """The machine is not set up (Java or the Delta jars missing): says which command fixes it."""

    exit_code = 2


class StageFailed(LinkageError):
    """A stage finished its other work but reports failure (a cohort failed, an audit failed). Exit code 1.

    The one failure exception of a stage: its message names what failed; nothing identifiable.
    """
