"""Re-check bundles at rest: a cached version, or a directory made by `pull --dest`.

Both report every file (not just the first failure) and raise IntegrityError at
the end when any file is wrong, so a user sees the whole damage at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelreg.config import Settings
from modelreg.errors import IntegrityError, InvalidArtifact, MissingFile, NotFound, UntrustedError
from modelreg.hashing import hash_file, is_sha256_hex
from modelreg.layout import MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME
from modelreg.local.cache import Cache
from modelreg.manifest import Manifest, check_bundle_path
from modelreg.progress import ProgressReporter, SilentProgress
from modelreg.refs import Ref
from modelreg.trust.gate import require_cached_manifest
from modelreg.trust.policy import (
    SignatureStatus,
    load_trusted_keys,
    signed_file_map,
    unverified_status,
    verify_trusted,
)


@dataclass(frozen=True)
class FileCheck:
    path: str
    expected: str
    actual: str | None  # None: missing

    @property
    def ok(self) -> bool:
        return self.actual == self.expected


@dataclass
class VerifyReport:
    subject: str
    checks: list[FileCheck]
    manifest: Manifest | None = None
    untracked: tuple[str, ...] = ()
    signature: SignatureStatus | None = None
    partial: bool = False
    """A directory from a partial pull: only the files its SHA256SUMS lists were checked."""

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def raise_for_failures(self, source: str, fix: str) -> None:
        bad = [check for check in self.checks if not check.ok]
        if not bad:
            return
        lines = "; ".join(f"{c.path}: expected {c.expected}, "
                          f"{'missing' if c.actual is None else 'found ' + c.actual}" for c in bad)
        first = bad[0]
        raise IntegrityError(f"{len(bad)} of {len(self.checks)} file(s) of {self.subject} failed "
                             f"verification: {lines}. {fix}",
                             path=first.path, expected=first.expected, actual=first.actual or "",
                             source=source)


def verify_cached(settings: Settings, ref: Ref, reporter: ProgressReporter | None = None) -> VerifyReport:
    """Re-hash every blob of a cached version; corrupt blobs are deleted so a pull can replace them."""
    reporter = reporter or SilentProgress()
    cache = Cache(settings.cache_dir)
    verified = require_cached_manifest(settings, cache, ref, fix=f"Pull it first ('modelreg pull {ref}').")
    manifest, signature = verified.manifest, verified.status
    checks = []
    for entry in manifest.files:
        try:
            cache.verify_blob(entry, reporter.task(f"verify {entry.path}", entry.size))
            checks.append(FileCheck(entry.path, entry.sha256, entry.sha256))
        except MissingFile:
            checks.append(FileCheck(entry.path, entry.sha256, None))
        except IntegrityError as exc:
            checks.append(FileCheck(entry.path, entry.sha256, exc.actual))
    report = VerifyReport(subject=f"{ref} in the local cache", checks=checks, manifest=manifest,
                          signature=signature)
    report.raise_for_failures("cache", f"The damaged copies were removed; run 'modelreg pull {ref}'.")
    return report


def verify_directory(directory: Path, settings: Settings, *, trusted_keys: Sequence[Path] = (),
                     reporter: ProgressReporter | None = None) -> VerifyReport:
    """Check a directory against its manifest.json (or SHA256SUMS) and its model.sig.

    Every file is hashed once. When trusted keys are given or configured, `model.sig`
    must be from one of them and cover exactly the directory's files (as OpenSSF's
    `model_signing verify` requires); a directory signed only with `model_signing sign`
    (no manifest) is checked against its signature alone.

    A directory from a partial pull (`pull --include/--exclude`) has the whole bundle's
    manifest.json and model.sig but a SHA256SUMS of the files it holds: when SHA256SUMS
    lists a subset of the manifest's files with the same digests, those files are
    checked (`report.partial`), and the signature is checked against the manifest,
    which vouches for the files present.
    """
    reporter = reporter or SilentProgress()
    if not directory.is_dir():
        raise NotFound(f"{directory} is not a directory.")
    actual = _hash_tree(directory, reporter)
    manifest_path, sums_path = directory / MANIFEST_NAME, directory / SUMS_NAME
    signature_path = directory / SIGNATURE_NAME
    signature = signature_path.read_bytes() if signature_path.is_file() else None
    keys = load_trusted_keys(settings, list(trusted_keys))
    manifest, signed_files, partial = None, None, False
    if manifest_path.is_file():
        manifest_bytes = manifest_path.read_bytes()
        manifest = Manifest.from_bytes(manifest_bytes, source=str(manifest_path))
        expected = {entry.path: entry.sha256 for entry in manifest.files}
        listed = parse_sha256sums(sums_path) if sums_path.is_file() else expected
        partial = bool(listed) and listed != expected and listed.items() <= expected.items()
        if listed != expected and not partial:
            raise IntegrityError(f"{sums_path} disagrees with {manifest_path}: one of them was edited. "
                                 f"Pull the version again into a fresh directory.",
                                 path=str(sums_path), source=str(directory))
        if partial:
            expected, signed_files = listed, signed_file_map(manifest, manifest_bytes)
    elif sums_path.is_file():
        expected = parse_sha256sums(sums_path)
    elif signature is not None and keys:
        expected = {path: digest for path, digest in actual.items() if path != SIGNATURE_NAME}
    else:
        raise NotFound(f"{directory} has neither {MANIFEST_NAME} nor {SUMS_NAME}; it was not made by "
                       f"'modelreg pull --dest'. Pass a directory that has them (or a model.sig and "
                       f"--trusted-key), or a version such as v9.")
    checks = [FileCheck(path, digest, actual.get(path)) for path, digest in sorted(expected.items())]
    known = set(expected) | {MANIFEST_NAME, SUMS_NAME, SIGNATURE_NAME}
    untracked = tuple(sorted(path for path in actual if path not in known))
    subject = (f"{directory} (partial pull: {len(expected)} of {len(manifest.files)} files of "
               f"{manifest.ref})" if partial and manifest else str(directory))
    report = VerifyReport(subject=subject, checks=checks, manifest=manifest, untracked=untracked,
                          partial=partial)
    report.raise_for_failures(str(directory), "Re-create the directory with 'modelreg pull VERSION --dest DIR'.")
    report.signature = _directory_signature(signature, keys, signed_files or actual, str(directory))
    return report


def _hash_tree(directory: Path, reporter: ProgressReporter) -> dict[str, str]:
    digests = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink():
            relative = path.relative_to(directory).as_posix()
            digests[relative], _size = hash_file(path, reporter.task(f"verify {relative}",
                                                                     path.stat().st_size))
    return digests


def _directory_signature(signature: bytes | None, keys: list, actual: dict[str, str],
                         subject: str) -> SignatureStatus:
    """Verified signer with keys; without, only what the unverified statement claims to cover."""
    files = {p: d for p, d in actual.items() if p != SIGNATURE_NAME}
    if not keys:
        return unverified_status(signature, files)
    if signature is None:
        raise UntrustedError(f"{subject} has no {SIGNATURE_NAME}, but trusted keys were given; only "
                             f"signed directories are accepted.")
    check = verify_trusted(signature, keys, files, subject)
    return SignatureStatus(signed=True, verified_by=check.signer_fingerprint, key_source=check.signer_source)


def parse_sha256sums(path: Path) -> dict[str, str]:
    """Read `sha256sum` output ("<hex>  <path>" or "<hex> *<path>") into {path: hex}."""
    result = {}
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition(" ")
        name = name[1:] if name[:1] in (" ", "*") else name
        if not is_sha256_hex(digest) or not name:
            raise InvalidArtifact(f"{path}:{number} is not a sha256sum line: {line!r}.")
        result[check_bundle_path(name)] = digest
    return result
