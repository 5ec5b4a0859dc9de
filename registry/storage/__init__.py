"""Choose a storage backend from a remote's URL scheme (one table, imported lazily)."""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from registry.config import RemoteSpec
from registry.errors import UsageError
from registry.storage.base import Storage

BACKENDS = {
    "file": "registry.storage.local:LocalStorage",
    "s3": "registry.storage.s3:S3Storage",
    "ssh": "registry.storage.ssh:SSHStorage",
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
