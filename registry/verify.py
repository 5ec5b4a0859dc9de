"""Re-check bundles at rest: a cached version, or a directory made by `pull --dest`.

Both report every file (not just the first failure) and raise IntegrityError at
the end when any file is wrong, so a user sees the whole damage at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from registry.cache import Cache
from registry.errors import IntegrityError, InvalidArtifact, NotFound
from registry.hashing import hash_file, is_sha256_hex
from registry.layout import MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME
from registry.manifest import Manifest, check_bundle_path
from registry.materialize import contained_path
from registry.progress import ProgressReporter, SilentProgress
from registry.refs import Ref


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


def verify_cached(cache: Cache, ref: Ref, reporter: ProgressReporter | None = None) -> VerifyReport:
    """Re-hash every blob of a cached version; corrupt blobs are deleted so a pull can replace them."""
    reporter = reporter or SilentProgress()
    manifest = cache.load_manifest(ref)
    if manifest is None:
        raise NotFound(f"{ref} is not in the local cache {cache.root}; pull it first "
                       f"('modelreg pull {ref}').")
    checks = []
    for entry in manifest.files:
        try:
            cache.verify_blob(entry, reporter.task(f"verify {entry.path}", entry.size))
            checks.append(FileCheck(entry.path, entry.sha256, entry.sha256))
        except IntegrityError as exc:
            checks.append(FileCheck(entry.path, entry.sha256, exc.actual))
        except NotFound:
            checks.append(FileCheck(entry.path, entry.sha256, None))
    report = VerifyReport(subject=f"{ref} in the local cache", checks=checks, manifest=manifest)
    report.raise_for_failures("cache", f"The damaged copies were removed; run 'modelreg pull {ref}'.")
    return report


def verify_directory(directory: Path, reporter: ProgressReporter | None = None) -> VerifyReport:
    """Check a directory against its manifest.json (or, lacking one, its SHA256SUMS)."""
    reporter = reporter or SilentProgress()
    manifest_path, sums_path = directory / MANIFEST_NAME, directory / SUMS_NAME
    manifest = None
    if manifest_path.is_file():
        manifest = Manifest.from_bytes(manifest_path.read_bytes(), source=str(manifest_path))
        expected = {entry.path: entry.sha256 for entry in manifest.files}
        if sums_path.is_file() and parse_sha256sums(sums_path) != expected:
            raise IntegrityError(f"{sums_path} disagrees with {manifest_path}: one of them was edited. "
                                 f"Pull the version again into a fresh directory.",
                                 path=str(sums_path), source=str(directory))
    elif sums_path.is_file():
        expected = parse_sha256sums(sums_path)
    else:
        raise NotFound(f"{directory} has neither {MANIFEST_NAME} nor {SUMS_NAME}; it was not made by "
                       f"'modelreg pull --dest'. Pass a directory that has them, or a version such as v9.")
    checks = []
    for relative, digest in sorted(expected.items()):
        path = contained_path(directory, relative)
        if not path.is_file():
            checks.append(FileCheck(relative, digest, None))
            continue
        actual, _size = hash_file(path, reporter.task(f"verify {relative}", path.stat().st_size))
        checks.append(FileCheck(relative, digest, actual))
    known = set(expected) | {MANIFEST_NAME, SUMS_NAME, SIGNATURE_NAME}
    untracked = tuple(sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                             if p.is_file() and p.relative_to(directory).as_posix() not in known))
    report = VerifyReport(subject=str(directory), checks=checks, manifest=manifest, untracked=untracked)
    report.raise_for_failures(str(directory), "Re-create the directory with 'modelreg pull VERSION --dest DIR'.")
    return report


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
