"""Accept existing files into a verified bundle, as the family named by `--family` understands them.

Everything is validated by the family before anything is stored (for v9: the
`.h5` graph, read as data, fits the labels and the normalization stats); then the
files are copied into the content-addressed cache and the manifest is pinned.
"""

from __future__ import annotations

from pathlib import Path

from modelreg import provenance
from modelreg.bundle import create_bundle
from modelreg.config import Settings
from modelreg.families import DEFAULT_FAMILY, IngestRequest, family_for
from modelreg.manifest import Manifest
from modelreg.progress import ProgressReporter
from modelreg.refs import Ref


def ingest(settings: Settings, ref: Ref, *, source_dir: Path | None = None,
           files_by_role: dict[str, Path] | None = None, family: str = DEFAULT_FAMILY,
           includes: tuple[str, ...] = (), metrics: dict | None = None,
           reporter: ProgressReporter | None = None) -> Manifest:
    """Validate the files with `family`, store them in the local cache and pin the manifest.

    Raises UsageError for missing or ambiguous inputs and InvalidArtifact (naming the
    file) when the family refuses them; nothing is stored then.
    """
    chosen = family_for(family)
    request = IngestRequest(version=ref.version, source_dir=source_dir,
                            files_by_role={k: v for k, v in (files_by_role or {}).items() if v is not None},
                            includes=tuple(includes))
    plan = chosen.plan_ingest(request)
    return create_bundle(settings, ref, plan.files, model=plan.model, metrics={**(plan.metrics or {}),
                                                                               **(metrics or {})},
                         provenance=provenance.collect(settings.workspace, source="ingest"),
                         reporter=reporter)
