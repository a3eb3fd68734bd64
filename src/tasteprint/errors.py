"""Errors raised by tasteprint. The CLI turns any TasteprintError into a message and exit code."""

from __future__ import annotations


class TasteprintError(Exception):
    """Base error: a message for people, an optional hint on how to fix it, and whether retrying helps."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool = False):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class StoreDamagedError(TasteprintError):
    """The store's database cannot be read: the message names the file, the hint the way back."""


class ConfigError(TasteprintError):
    """A setting is missing or invalid."""


class UnknownUserError(TasteprintError):
    """The user id has no events in the store."""

    def __init__(self, user_id: str):
        super().__init__(
            f"unknown user {user_id!r}: no events for this id in the store",
            hint="check the id (ids are the source's own ids, as strings) and the --store directory",
        )
        self.user_id = user_id


class UnknownItemError(TasteprintError):
    """The item id is not in the catalogue."""

    def __init__(self, item_id: str):
        super().__init__(f"unknown item {item_id!r}: not in the store's catalogue")
        self.item_id = item_id


class BatchFailed(TasteprintError):
    """Some users of a batch could not be profiled; the others were, and are stored."""

    def __init__(self, failed: int, total: int):
        super().__init__(
            f"{failed} of {total} users could not be profiled; the others are stored",
            hint="the reasons are listed above; run the command again to retry only those users",
        )


class IngestError(TasteprintError):
    """The input cannot be read at all (missing path, unknown format, rejected lines under --strict)."""


class LLMError(TasteprintError):
    """The language model backend failed (unreachable, bad model path, HTTP error)."""


class StructuredOutputError(LLMError):
    """The model never produced output that validates against the requested schema."""

    def __init__(self, message: str, *, attempts: int, last_reply: str):
        super().__init__(message, hint="try a larger model, or raise max_attempts", retryable=True)
        self.attempts = attempts
        self.last_reply = last_reply
