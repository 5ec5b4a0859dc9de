"""Choose a storage backend from a remote's URL scheme (one table, imported lazily)."""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from modelreg.config import RemoteSpec
from modelreg.errors import UsageError
from modelreg.storage.base import Storage

BACKENDS = {
    "file": "modelreg.storage.local:LocalStorage",
    "s3": "modelreg.storage.s3.backend:S3Storage",
    "ssh": "modelreg.storage.ssh.backend:SSHStorage",
}


def open_storage(spec: RemoteSpec) -> Storage:
    """Open the backend for `spec.url`; raises UsageError for an unknown scheme."""
    scheme = urlsplit(spec.url).scheme
    target = BACKENDS.get(scheme)
    if target is None:
        raise UsageError(
            f"Unsupported registry URL {spec.url!r}: use file:///path, s3://bucket/prefix "
            f"or ssh://user@host:port/path."
        )
    module_name, class_name = target.split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class(spec)


__all__ = ["Storage", "open_storage", "BACKENDS"]
