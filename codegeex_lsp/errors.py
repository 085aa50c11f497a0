"""User-facing errors: each carries a one-line message that says what to do.

The CLI prints `error: <message>` and exits non-zero; the server reports the message to the client
and keeps serving. Nothing in here imports torch.
"""

from __future__ import annotations


class CodegeexError(Exception):
    """Base class for errors a user can act on (never a bug in this package)."""

    exit_code = 2


class ModelError(CodegeexError):
    """The model cannot be found, verified, or loaded."""


class PromptFormatError(CodegeexError):
    """A prompt format is unknown or does not fit the loaded tokenizer."""


class InputError(CodegeexError):
    """The file or cursor position given by the user cannot be completed."""


class BackendError(CodegeexError):
    """The model backend (worker process, remote server) failed one request; the next may work."""


class WorkerCrashed(BackendError):
    """The model worker died while a request was in flight (it is restarted for the next one)."""


class WorkerGone(BackendError):
    """The model worker exited on purpose (idle timeout, stop) before it took the request."""


class RemoteError(BackendError):
    """A remote completion server could not be reached or answered with an error."""
