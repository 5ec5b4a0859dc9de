"""modelreg: verified model bundles on local, S3 and SSH registries.

    import modelreg
    bundle = modelreg.load("v9")          # pull if needed, verify, build, load weights
    bundle.predict(features)              # [(label, probabilities)] per input

Heavy parts (boto3, paramiko, tensorflow) are imported only when used.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load": ("modelreg.loading", "load"),
    "LoadedModel": ("modelreg.families.v9.family", "LoadedModel"),
    "push": ("modelreg.transfer", "push"),
    "pull": ("modelreg.transfer", "pull"),
    "Settings": ("modelreg.config", "Settings"),
    "RegistryError": ("modelreg.errors", "RegistryError"),
    "IntegrityError": ("modelreg.errors", "IntegrityError"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module_name, attribute = _LAZY[name]
        return getattr(importlib.import_module(module_name), attribute)
    raise AttributeError(f"module 'registry' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
