"""Exceptions that map onto the command line's exit codes."""
from __future__ import annotations

EXIT_OK = 0
EXIT_VALIDATION_FAILED = 1  # a probe failed; rollback completed and verified
EXIT_BAD_INPUT = 2  # nothing changed
EXIT_EMERGENCY = 3  # rollback failed or incomplete
EXIT_LOCKED = 4  # another run holds the lock
EXIT_INTERNAL = 5  # an unexpected error (a bug, a connector failure) before anything changed
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT) before anything changed, as shells report it (128 + 2)


class RolloutError(Exception):
    """An error the command line reports as one line and an exit code.

    `host` names the inventory host it happened on (None: not host-specific); the
    message itself does not repeat it, and `str()` puts it in front: `@local: …`.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, host: str | None = None):
        super().__init__(message)
        self.message = message
        self.host = host

    def __str__(self) -> str:
        return f"{self.host}: {self.message}" if self.host else self.message


def without_host(exc: BaseException, host: str) -> str:
    """The error's text for a line that already names `host`."""
    if isinstance(exc, RolloutError) and exc.host == host:
        return exc.message
    return str(exc)


class InputError(RolloutError):
    """Bad input (plan, inventory, options): nothing on any host was changed.

    `key` is the plan key the error is about, so the plan's file and line can be named."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, key: str | None = None, host: str | None = None):
        super().__init__(message, host=host)
        self.key = key


class HostError(RolloutError):
    """A host or its engine did not do what was asked."""

    exit_code = EXIT_BAD_INPUT


class StepFailed(RolloutError):
    """A step or probe failed while applying; the executor rolls back."""

    exit_code = EXIT_VALIDATION_FAILED


class LockHeld(RolloutError):
    exit_code = EXIT_LOCKED


class UnfinishedRun(RolloutError):
    """A previous run was interrupted; roll it back before starting another."""

    exit_code = EXIT_BAD_INPUT
