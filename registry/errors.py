"""The error hierarchy every modelreg failure is raised as.

Callers catch `RegistryError` once; each subclass also inherits its natural
built-in (`NotFound` is a `FileNotFoundError`, ...) so plain Python code can catch
either. Every message says what happened, to which file or remote, and what to do.
The CLI maps each class to an exit code in one table (`modelreg.cli.errors`).
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every expected modelreg failure (the CLI maps each class to an exit code)."""


class UsageError(RegistryError, ValueError):
    """The caller asked for something malformed (a bad ref, URL, option or input file)."""


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
    to do about it. The subclasses below render their message from these fields.
    """


    def __init__(self, message: str, *, path: str = "", expected: str = "", actual: str = "",
                 source: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.expected = expected
        self.actual = actual
        self.source = source


class DigestMismatch(IntegrityError):
    """A file's bytes differ from its manifest entry (digest or size), detected while streaming.

    `where` says which copy was bad ("the download of X from REMOTE", "the cached
    copy of X"), `outcome` what was done about it, and `fix` what the user can do.
    """

    def __init__(self, *, path: str, expected: str, actual: str, expected_size: int, actual_size: int,
                 where: str, outcome: str, fix: str, source: str) -> None:
        self.expected_size, self.actual_size = expected_size, actual_size
        super().__init__(
            f"{where[:1].upper()}{where[1:]} failed verification: expected sha256 {expected} "
            f"({expected_size} bytes), got {actual} ({actual_size} bytes). {outcome} {fix}",
            path=path, expected=expected, actual=actual, source=source)


class MissingFile(IntegrityError):
    """A file a verified manifest names is not where the manifest says it must be."""

    def __init__(self, *, path: str, expected: str, where: str, fix: str, source: str) -> None:
        super().__init__(f"{path} (sha256 {expected[:12]}) is missing from {where}. {fix}",
                         path=path, expected=expected, actual="", source=source)


class MisplacedManifest(IntegrityError):
    """A manifest stored under one version describes another: copied or moved there by hand."""

    def __init__(self, *, stored_as: str, describes: str, where: str, key: str, source: str) -> None:
        super().__init__(f"The manifest stored as {stored_as} in {where} describes {describes}: it was "
                         f"copied or moved there by hand. Nothing was used; fetch {stored_as} from a "
                         f"registry that holds it.", path=key, expected=stored_as, actual=describes,
                         source=source)


class ManifestMismatch(IntegrityError):
    """A manifest's digest differs from the one something trusted promised (a pin or a tag)."""

    def __init__(self, *, subject: str, expected: str, actual: str, promised_by: str, outcome: str,
                 fix: str, path: str, source: str) -> None:
        super().__init__(
            f"The manifest of {subject} has sha256 {actual}, but {promised_by} promises {expected}. "
            f"{outcome} {fix}", path=path, expected=expected, actual=actual, source=source)


class UntrustedError(RegistryError, PermissionError):
    """A bundle is unsigned, signed by an unknown key, or an older version than the tag pointed at."""


class Yanked(UntrustedError):
    """The publisher withdrew (yanked) this version; refused unless the caller allows yanked versions.

    An UntrustedError (exit 4) like a downgrade: the bytes are intact, but using them
    goes against what the registry says, and an explicit flag (`--allow-yanked`) overrides.
    """


class LocalIOError(RegistryError, OSError):
    """Writing to the local cache or a destination failed (disk full, read-only, permissions)."""


class RemoteError(RegistryError, OSError):
    """The remote could not be reached or refused the operation; the backend's own error is `__cause__`."""


class RemoteUnreachableWarning(UserWarning):
    """`modelreg.load` went on with a cached version because the remote could not be reached."""


class InUse(RegistryError):
    """Something still depends on what an operation would remove (a tag on a version to delete);
    the message names it and says how to go ahead anyway (`--force`)."""
