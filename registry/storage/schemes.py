"""The one table of storage backends: URL scheme -> backend class, its options and URL form.

Adding a backend means adding a row here (and its module). `modelreg.config`
checks remote URLs and options against this table, and `open_storage` imports a
backend's module from it only when a remote of that scheme is opened, so reading
the table never imports boto3 or paramiko.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from modelreg.errors import UsageError


@dataclass(frozen=True)
class BackendInfo:
    """How one URL scheme is served."""

    scheme: str
    target: str
    """`module:Class` of the backend, imported on first use."""
    url_example: str
    """The URL form shown in messages and help, e.g. `s3://bucket/prefix`."""
    options: tuple[str, ...] = ()
    """Options a remote of this scheme may store in the config file (`modelreg remote add`)."""
    runtime_options: tuple[str, ...] = ()
    """Options the program passes when opening (never stored: host-key acceptance, passphrases)."""
    needs_netloc: bool = True
    """Whether the URL must name a location after `scheme://` (a bucket, a host)."""

    def load(self) -> type:
        """The backend class (imports its module, and so its client library)."""
        module_name, class_name = self.target.split(":")
        return getattr(importlib.import_module(module_name), class_name)


BACKENDS: Mapping[str, BackendInfo] = {info.scheme: info for info in (
    BackendInfo("file", "modelreg.storage.local:LocalStorage", "file:///path", needs_netloc=False),
    BackendInfo("s3", "modelreg.storage.s3.backend:S3Storage", "s3://bucket/prefix",
                options=("endpoint_url", "region", "profile", "addressing_style", "max_attempts",
                         "atomic_create_only", "stall_timeout")),
    BackendInfo("ssh", "modelreg.storage.ssh.backend:SSHStorage", "ssh://user@host:port/path",
                options=("identity_file", "known_hosts", "connect_timeout", "stall_timeout"),
                runtime_options=("accept_new_host_key", "passphrase", "bulk")),
)}


def url_forms() -> str:
    """`file:///path, s3://bucket/prefix or ssh://user@host:port/path`, from the table."""
    examples = [info.url_example for info in BACKENDS.values()]
    return examples[0] if len(examples) == 1 else f"{', '.join(examples[:-1])} or {examples[-1]}"


def backend_for_url(url: str) -> BackendInfo:
    """The table row for `url`'s scheme; UsageError (naming the forms that work) otherwise.

    Also rejects a URL without the location its scheme needs (`s3:///x`, `ssh:///x`);
    the backend itself checks the rest of the URL when it is opened.
    """
    parts = urlsplit(url)
    info = BACKENDS.get(parts.scheme)
    if info is None or (info.needs_netloc and not parts.netloc):
        raise UsageError(f"Invalid registry URL {url!r}: use {url_forms()}.")
    return info


def storable_option_keys() -> tuple[str, ...]:
    """Every option any backend lets a remote store, in table order."""
    return tuple(dict.fromkeys(key for info in BACKENDS.values() for key in info.options))


def check_remote_options(url: str, options: Mapping[str, object]) -> None:
    """Reject options no backend knows, and set options that `url`'s backend does not take.

    Options whose value is None count as not given.
    """
    known = storable_option_keys()
    unknown = set(options) - set(known)
    if unknown:
        raise UsageError(f"Unknown remote option(s) {sorted(unknown)}; known: {list(known)}.")
    info = backend_for_url(url)
    foreign = sorted(key for key, value in options.items() if value is not None and key not in info.options)
    if foreign:
        takes = ", ".join(info.options) or "no options"
        raise UsageError(f"Remote option(s) {foreign} do not apply to {info.scheme}:// remotes "
                         f"({info.scheme}:// takes {takes}).")
