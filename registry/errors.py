"""The error hierarchy every modelreg failure is raised as.

Callers catch `RegistryError` once; each subclass also inherits its natural
built-in (`NotFound` is a `FileNotFoundError`, ...) so plain Python code can catch
either. Every message says what happened, to which file or remote, and what to do.
The CLI maps each class to an exit code (`exit_code`), documented in the README.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every expected modelreg failure; `exit_code` is what the CLI returns."""

    exit_code = 1


class UsageError(RegistryError, ValueError):
    """The caller asked for something malformed (a bad ref, URL, option or input file)."""

    exit_code = 2


class ConfigError(RegistryError):
    """The configuration file or a named remote is missing or invalid."""


class NotFound(RegistryError, FileNotFoundError):
    """A version, tag, blob or local file does not exist where it was looked for."""


class AlreadyExists(RegistryError, FileExistsError):
    """A create-only write found the key already there (immutable versions, manifests)."""


class InvalidArtifact(RegistryError, ValueError):
    """A model artifact (weights, labels, mean, std, dataset) is malformed or inconsistent."""


class IntegrityError(RegistryError):
    """Bytes did not match the digest or size their manifest promised.

    Carries the file's name, the expected and actual digest, and where the bad copy
    came from (`"remote"`, `"cache"` or a directory), so the message can say what
    to do about it.
    """

    exit_code = 3

    def __init__(self, message: str, *, path: str = "", expected: str = "", actual: str = "",
                 source: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.expected = expected
        self.actual = actual
        self.source = source


class UntrustedError(RegistryError, PermissionError):
    """A bundle is unsigned, signed by an unknown key, or an older version than the tag pointed at."""

    exit_code = 4


class LocalIOError(RegistryError, OSError):
    """Writing to the local cache or a destination failed (disk full, read-only, permissions)."""


class RemoteError(RegistryError, OSError):
    """The remote could not be reached or refused the operation; the backend's own error is `__cause__`."""

    exit_code = 5
