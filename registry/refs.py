"""Model references: `[NAME:]VERSION`, where VERSION may also be a tag such as `production`."""

from __future__ import annotations

from dataclasses import dataclass

from modelreg.errors import UsageError
from modelreg.layout import check_name


@dataclass(frozen=True)
class Ref:
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


def parse_ref(text: str, default_name: str) -> Ref:
    """`v9` -> Ref(default_name, "v9"); `speech:v9` -> Ref("speech", "v9")."""
    if not text or text.count(":") > 1:
        raise UsageError(f"Invalid model reference {text!r}: use VERSION or NAME:VERSION, e.g. 'v9' "
                         f"or 'emotion:v9'.")
    name, _, version = text.rpartition(":")
    return Ref(check_name(name or default_name, "model name"), check_name(version, "version"))
