"""`modelreg export` and `modelreg import`: one tar laid out as a registry root, imported all or nothing.

Archives are extracted with the real `tar`, and hostile archives are built by the tests
with `tarfile`: each must be refused with nothing left in the cache.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from modelreg.config import Settings
from modelreg.hashing import hash_bytes
from modelreg.layout import SIGNATURE_NAME, blob_key, version_key
from modelreg.local.cache import Cache
from modelreg.manifest import Manifest, canonical_json
from modelreg.refs import Ref
from modelreg.trust.keys import generate_keypair
from tests.helpers import make_bundle, run_cli
from tests.test_trust import MODEL_SIGNING, new_consumer, trust

WEIGHTS = b"weights" * 5000
LABELS = b"labels"
EXIT_USAGE, EXIT_INTEGRITY, EXIT_UNTRUSTED = 2, 3, 4


@pytest.fixture
def signer(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys" / "release")


@pytest.fixture
def bundle(settings: Settings, tmp_path: Path):
    return make_bundle(settings, "v9", {"best_model_v9.h5": WEIGHTS, "labels.npy": LABELS}, tmp_path)


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}  # type: ignore[union-attr]


def cached_manifests(cache_dir: Path) -> list[str]:
    return sorted(p.relative_to(cache_dir / "manifests").as_posix()
                  for p in (cache_dir / "manifests").glob("*/*.json"))


def assert_nothing_imported(cache_dir: Path) -> None:
    assert cached_manifests(cache_dir) == []
    assert [p for p in cache_dir.glob("blobs/**/*") if p.is_file()] == []
    assert [p for p in cache_dir.glob("tmp/*")] == []


def test_export_extracted_by_tar_is_a_registry_pull_accepts(bundle, signer, target, tmp_path, monkeypatch):
    run_cli("push", "v9", "--remote", target, "--sign", str(signer[0]))
    run_cli("tag", "v9", "production", "--remote", target)
    workspace = new_consumer(tmp_path, monkeypatch, "exporter")
    archive = tmp_path / "out" / "v9.tar"
    archive.parent.mkdir()

    out = json.loads(run_cli("export", "production", "-o", str(archive), "--tags", "--remote", target,
                             "--json").stdout)

    assert out["pulled"] == ["emotion:v9"] and out["tags"] == ["emotion:production"]
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(extracted)], check=True)
    assert (extracted / version_key("emotion", "v9", SIGNATURE_NAME)).is_file()
    new_consumer(tmp_path, monkeypatch, "reader")
    trust(signer[1], workspace)
    dest = tmp_path / "dest"
    run_cli("pull", "production", "--remote", extracted.as_uri(), "--dest", str(dest),
            "--workspace", str(workspace))
    assert (dest / "best_model_v9.h5").read_bytes() == WEIGHTS
    check = subprocess.run([str(MODEL_SIGNING), "verify", "key", str(dest), "--signature",
                            str(dest / SIGNATURE_NAME), "--public_key", str(signer[1])],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


def test_export_is_byte_for_byte_reproducible(bundle, tmp_path):
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    run_cli("export", "v9", "-o", str(first), "--offline")
    run_cli("export", "v9", "-o", str(second), "--offline")

    assert first.read_bytes() == second.read_bytes()
    assert sorted(members(first)) == sorted([
        blob_key(hash_bytes(WEIGHTS)), blob_key(hash_bytes(LABELS)),
        version_key("emotion", "v9"), version_key("emotion", "v9", "SHA256SUMS")])


def test_export_and_import_work_offline_and_the_import_pulls_offline(bundle, settings, tmp_path,
                                                                      monkeypatch):
    archive = tmp_path / "v9.tar"
    run_cli("export", "v9", "-o", str(archive), "--offline")
    new_consumer(tmp_path, monkeypatch, "island")

    out = run_cli("import", str(archive), "--offline")

    assert "Imported emotion:v9" in out.stdout
    dest = tmp_path / "dest"
    run_cli("pull", "v9", "--offline", "--dest", str(dest))
    assert (dest / "labels.npy").read_bytes() == LABELS


def test_import_of_a_tag_lets_an_offline_pull_resolve_it(bundle, target, tmp_path, monkeypatch):
    run_cli("push", "v9", "--remote", target)
    run_cli("tag", "v9", "production", "--remote", target)
    archive = tmp_path / "v9.tar"
    run_cli("export", "v9", "-o", str(archive), "--tags", "--remote", target)
    new_consumer(tmp_path, monkeypatch, "island")

    run_cli("import", str(archive))

    out = run_cli("pull", "production", "--offline", "--remote", target)
    assert "resolved to v9" in out.stderr + out.stdout


def test_export_refuses_an_altered_cache_blob_and_writes_no_archive(bundle, settings, tmp_path):
    blob = Cache(settings.cache_dir).blob_path(hash_bytes(WEIGHTS))
    blob.chmod(0o644)
    blob.write_bytes(b"X" * len(WEIGHTS))
    archive = tmp_path / "v9.tar"

    out = run_cli("export", "v9", "-o", str(archive), "--offline", expect=EXIT_INTEGRITY)

    assert "was not written" in out.stderr and "Traceback" not in out.stderr
    assert list(tmp_path.glob("*v9.tar*")) == []


def test_export_offline_of_an_uncached_version_is_refused(bundle, tmp_path):
    out = run_cli("export", "v10", "-o", str(tmp_path / "x.tar"), "--offline", expect=None)
    assert out.returncode == 1 and "not in the local cache" in out.stderr


def test_import_into_a_remote_keeps_the_signature_valid(bundle, signer, target, tmp_path, monkeypatch):
    run_cli("push", "v9", "--remote", "local", "--sign", str(signer[0]))
    archive = tmp_path / "v9.tar"
    run_cli("export", "v9", "-o", str(archive), "--remote", "local")
    workspace = new_consumer(tmp_path, monkeypatch, "importer")
    trust(signer[1], workspace)

    out = json.loads(run_cli("import", str(archive), "--remote", target, "--json").stdout)

    assert [v["ref"] for v in out["versions"]] == ["emotion:v9"]
    assert cached_manifests(tmp_path / "cache-importer") == []
    new_consumer(tmp_path, monkeypatch, "reader")
    dest = tmp_path / "dest"
    run_cli("pull", "v9", "--remote", target, "--dest", str(dest), "--workspace", str(workspace))
    check = subprocess.run([str(MODEL_SIGNING), "verify", "key", str(dest), "--signature",
                            str(dest / SIGNATURE_NAME), "--public_key", str(signer[1])],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


# --- hostile archives ----------------------------------------------------------------------

def write_tar(path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                tar.addfile(info, io.BytesIO(entry[1]))
    return path


def special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.fixture
def good_members(bundle, tmp_path) -> list[tuple[str, bytes]]:
    archive = tmp_path / "good.tar"
    run_cli("export", "v9", "-o", str(archive), "--offline")
    return sorted(members(archive).items())


def hostile(good: list[tuple[str, bytes]], case: str) -> list:
    manifest_key = version_key("emotion", "v9")
    weights_key = blob_key(hash_bytes(WEIGHTS))
    if case == "dotdot":
        return [*good, ("models/../../evil.json", b"{}")]
    if case == "absolute":
        return [*good, ("/tmp/evil.json", b"{}")]
    if case == "symlink":
        return [*good, special("models/emotion/v10/manifest.json", tarfile.SYMTYPE, "/etc/passwd")]
    if case == "hardlink":
        return [*good, special("models/emotion/v10/manifest.json", tarfile.LNKTYPE, manifest_key)]
    if case == "fifo":
        return [*good, special("models/emotion/v10/manifest.json", tarfile.FIFOTYPE)]
    if case == "device":
        return [*good, special("models/emotion/v10/manifest.json", tarfile.CHRTYPE)]
    if case == "duplicate":
        return [*good, (manifest_key, dict(good)[manifest_key])]
    if case == "foreign":
        return [*good, ("README.txt", b"hello")]
    if case == "oversize":
        return [*good, ("tags/emotion/production.json", b" " * (65 * 1024))]
    if case == "tampered-blob":
        return [(k, b"Y" * len(v) if k == weights_key else v) for k, v in good]
    if case == "tampered-manifest":
        return swap_weights(good, keep_sums=True)
    if case == "missing-blob":
        return [(k, v) for k, v in good if k != weights_key]
    raise AssertionError(case)


EVIL = b"evil weights" * 100


def swap_weights(good: list[tuple[str, bytes]], *, keep_sums: bool) -> list[tuple[str, bytes]]:
    """The archive with the weights replaced by EVIL in the manifest (and SHA256SUMS unless kept)."""
    manifest_key, sums_key = version_key("emotion", "v9"), version_key("emotion", "v9", "SHA256SUMS")
    raw = json.loads(dict(good)[manifest_key])
    raw["files"] = [dict(f, sha256=hash_bytes(EVIL), size=len(EVIL)) if f["path"] == "best_model_v9.h5"
                    else f for f in raw["files"]]
    evil_manifest = Manifest.from_bytes(canonical_json(raw), source="test")
    changed = {manifest_key: canonical_json(raw), blob_key(hash_bytes(EVIL)): EVIL}
    if not keep_sums:
        changed[sums_key] = evil_manifest.sha256sums().encode()
    return sorted({**dict(good), **changed}.items())


@pytest.mark.parametrize(("case", "code", "words"), [
    ("dotdot", 1, "unsafe name"), ("absolute", 1, "unsafe name"), ("symlink", 1, "not a regular file"),
    ("hardlink", 1, "not a regular file"), ("fifo", 1, "not a regular file"),
    ("device", 1, "not a regular file"),
    ("duplicate", 1, "appears twice"), ("foreign", 1, "not part of a registry layout"),
    ("oversize", 1, "more than the"), ("tampered-blob", EXIT_INTEGRITY, "failed verification"),
    ("tampered-manifest", EXIT_INTEGRITY, "disagrees with the manifest"),
    ("missing-blob", EXIT_INTEGRITY, "missing from"),
])
def test_import_refuses_a_hostile_archive_and_imports_nothing(good_members, case, code, words, tmp_path,
                                                              monkeypatch):
    archive = write_tar(tmp_path / f"{case}.tar", hostile(good_members, case))
    new_consumer(tmp_path, monkeypatch, "victim")

    out = run_cli("import", str(archive), expect=code)

    assert words in out.stderr and "Traceback" not in out.stderr
    assert_nothing_imported(tmp_path / "cache-victim")
    assert not (tmp_path / "evil.json").exists()


@pytest.mark.parametrize("damage", ["truncated", "not-a-tar"])
def test_import_refuses_a_damaged_file_and_imports_nothing(good_members, damage, tmp_path, monkeypatch):
    archive = write_tar(tmp_path / "v9.tar", good_members)
    data = archive.read_bytes()
    archive.write_bytes(data[:len(data) // 2] if damage == "truncated" else b"PK\x03\x04 a zip file" * 50)
    new_consumer(tmp_path, monkeypatch, "victim")

    out = run_cli("import", str(archive), expect=1)

    assert "not a readable tar archive" in out.stderr and "Traceback" not in out.stderr
    assert_nothing_imported(tmp_path / "cache-victim")


def test_import_accepts_a_gzipped_tar_of_an_extracted_archive(good_members, tmp_path, monkeypatch):
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-xf", str(write_tar(tmp_path / "v9.tar", good_members)), "-C", str(extracted)],
                   check=True)
    retarred = tmp_path / "v9.tgz"
    subprocess.run(["tar", "-czf", str(retarred), "-C", str(extracted), "."], check=True)
    new_consumer(tmp_path, monkeypatch, "reader")

    run_cli("import", str(retarred))

    assert cached_manifests(tmp_path / "cache-reader") == ["emotion/v9.json"]
    assert "verified" in run_cli("verify", "v9").stdout


def test_import_leaves_out_blobs_no_manifest_names(good_members, tmp_path, monkeypatch):
    stray = b"a blob nobody names"
    archive = write_tar(tmp_path / "v9.tar", [*good_members, (blob_key(hash_bytes(stray)), stray)])
    new_consumer(tmp_path, monkeypatch, "reader")

    out = json.loads(run_cli("import", str(archive), "--json").stdout)

    assert out["blobs"] == 3 and out["unreferenced_blobs"] == 1
    assert not Cache(tmp_path / "cache-reader").blob_path(hash_bytes(stray)).exists()
    assert Cache(tmp_path / "cache-reader").blob_path(hash_bytes(WEIGHTS)).is_file()


def test_import_into_a_remote_with_offline_is_refused(good_members, file_target, tmp_path):
    archive = write_tar(tmp_path / "v9.tar", good_members)
    out = run_cli("import", str(archive), "--remote", file_target, "--offline", expect=EXIT_USAGE)
    assert "--offline" in out.stderr


def test_import_refuses_a_signature_from_an_untrusted_key(bundle, tmp_path, monkeypatch):
    mallory, _ = generate_keypair(tmp_path / "keys" / "mallory")
    _, trusted_public = generate_keypair(tmp_path / "keys" / "release")
    run_cli("push", "v9", "--remote", "local", "--sign", str(mallory))
    archive = tmp_path / "v9.tar"
    run_cli("export", "v9", "-o", str(archive), "--remote", "local")
    workspace = new_consumer(tmp_path, monkeypatch, "victim")
    trust(trusted_public, workspace)

    out = run_cli("import", str(archive), expect=EXIT_UNTRUSTED)

    assert "not from any trusted key" in out.stderr
    assert_nothing_imported(tmp_path / "cache-victim")


def test_import_refuses_a_manifest_changed_after_signing(bundle, signer, tmp_path, monkeypatch):
    run_cli("push", "v9", "--remote", "local", "--sign", str(signer[0]))
    signed = tmp_path / "signed.tar"
    run_cli("export", "v9", "-o", str(signed), "--remote", "local")
    archive = write_tar(tmp_path / "v9.tar", swap_weights(sorted(members(signed).items()), keep_sums=False))
    workspace = new_consumer(tmp_path, monkeypatch, "victim")
    trust(signer[1], workspace)

    out = run_cli("import", str(archive), expect=EXIT_UNTRUSTED)

    assert "changed after it was signed" in out.stderr
    assert_nothing_imported(tmp_path / "cache-victim")


def test_import_refuses_an_unsigned_archive_when_keys_are_trusted(good_members, tmp_path, monkeypatch):
    _, trusted_public = generate_keypair(tmp_path / "keys" / "release")
    archive = write_tar(tmp_path / "v9.tar", good_members)
    workspace = new_consumer(tmp_path, monkeypatch, "victim")
    trust(trusted_public, workspace)

    run_cli("import", str(archive), expect=EXIT_UNTRUSTED)

    assert_nothing_imported(tmp_path / "cache-victim")


def test_import_refuses_a_different_version_already_cached(good_members, tmp_path, monkeypatch):
    archive = write_tar(tmp_path / "v9.tar", good_members)
    new_consumer(tmp_path, monkeypatch, "victim")
    local = Settings.resolve()
    make_bundle(local, "v9", {"best_model_v9.h5": b"another model"}, tmp_path / "other")
    (local.workspace / "manifests" / "emotion" / "v9.json").unlink()  # no pin: the cache itself refuses
    before = Cache(local.cache_dir).read_manifest_bytes(Ref("emotion", "v9"))

    out = run_cli("import", str(archive), expect=1)

    assert "different manifest" in out.stderr
    assert Cache(local.cache_dir).read_manifest_bytes(Ref("emotion", "v9")) == before


def test_export_of_a_yanked_version_is_refused_unless_allowed(bundle, file_target, tmp_path):
    run_cli("push", "v9", "--remote", file_target)
    run_cli("yank", "v9", "--reason", "trained on the test set", "--remote", file_target)
    archive = tmp_path / "v9.tar"

    refused = run_cli("export", "v9", "-o", str(archive), "--remote", file_target, expect=4)

    assert "trained on the test set" in refused.stderr and not archive.exists()
    allowed = run_cli("export", "v9", "-o", str(archive), "--remote", file_target, "--allow-yanked")
    assert "Used anyway because of --allow-yanked" in allowed.stderr and archive.exists()
