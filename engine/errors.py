"""Errors a user can cause, each printed as one sentence (no torch import here: the CLI reads these first)."""

from mercury_lsp.engine.api.validation import RequestError


class UsageError(Exception):
    """A command-line problem the user can fix."""


class CheckpointError(Exception):
    """A model folder that cannot be used; the message is one sentence naming the problem."""


class InfillError(RequestError):
    """A request the engine cannot serve; the message is one sentence for the user."""
