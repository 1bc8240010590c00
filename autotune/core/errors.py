"""One exception root for the product; the CLI maps each class to an exit code.

Every message is meant to be printed as one line that names the problem and the fix.
"""

from __future__ import annotations


class AutotuneError(Exception):
    """Root of every error the product raises on purpose."""

    exit_code = 1


class BadInputError(AutotuneError):
    """The user gave us something invalid (file, flag, value): exit 2, nothing changed."""

    exit_code = 2


class EnvironmentProblem(AutotuneError):
    """The machine lacks something we need (a binary, root, a kernel feature): exit 2."""

    exit_code = 2


class KernelMismatchError(BadInputError):
    """A policy or catalog was made for another kernel build."""


class NoiseTooHighError(AutotuneError):
    """The preflight measured more noise than the requested minimum effect tolerates."""

    exit_code = 3


class MeasurementError(AutotuneError):
    """A workload run failed (server died, load generator output unreadable)."""

    exit_code = 4


class TargetCrashed(AutotuneError):
    """The target kernel panicked, oopsed, locked up or stopped answering; the message says which.

    The operation in progress failed and the target's state is gone; a lab target restarts
    clean on its next use.
    """

    exit_code = 5


class LeaseLapsed(AutotuneError):
    """The agent reset every knob because the controller stopped renewing its lease."""

    exit_code = 5


class KnobRejected(AutotuneError):
    """The kernel refused a value inside our domain (e.g. a sysctl bounded by another sysctl).

    The write batch was undone; the trial fails with this reason and the study goes on.
    """

    exit_code = 4
