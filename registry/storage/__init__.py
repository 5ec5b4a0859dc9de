"""Choose a storage backend from a remote's URL scheme (the table in `schemes`, imported lazily)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelreg.storage.base import Cancelled, Capabilities, Sink, Storage
from modelreg.storage.schemes import BACKENDS, BackendInfo, backend_for_url

if TYPE_CHECKING:
    from modelreg.config import RemoteSpec


def open_storage(spec: RemoteSpec) -> Storage:
    """Open the backend for `spec.url` (a context manager); UsageError for an unknown scheme.

    Only that backend's module (and client library) is imported.
    """
    return backend_for_url(spec.url).load()(spec)


__all__ = ["BACKENDS", "BackendInfo", "Cancelled", "Capabilities", "Sink", "Storage", "open_storage"]
