"""The `s3://` backend (see `backend`). botocore is imported here, first, without pyOpenSSL
and without `importlib.metadata` (which urllib3's http2 module takes at import, see
`modelreg.lean_imports`).

When pyOpenSSL is installed (other packages depend on it), `botocore.httpsession`
imports `urllib3.contrib.pyopenssl` only to take `orig_util_SSLContext` from it,
which is `urllib3.util.ssl_.SSLContext` unchanged unless someone calls
`inject_into_urllib3()` (modelreg never does); botocore falls back to that same class
when the import fails. Importing it costs pyOpenSSL and `cryptography.x509`: about
20 ms of every S3 command's start-up (timed around `import botocore.session`). So the
first import of botocore sees that import fail. A program that imported
botocore or pyOpenSSL's urllib3 shim before is left alone; one that imports the shim
later gets it as usual.
"""

from __future__ import annotations

import sys

from modelreg.lean_imports import deferred_metadata

_SHIM = "urllib3.contrib.pyopenssl"


def _import_botocore_without_pyopenssl() -> None:
    if "botocore.httpsession" in sys.modules or _SHIM in sys.modules:
        return
    sys.modules[_SHIM] = None  # type: ignore[assignment]  # makes the import raise ImportError
    try:
        with deferred_metadata():
            import botocore.httpsession  # noqa: F401
    finally:
        if _SHIM in sys.modules and sys.modules[_SHIM] is None:
            del sys.modules[_SHIM]


_import_botocore_without_pyopenssl()
