"""`modelreg remote add|list|show`, `modelreg list` and `modelreg show`."""

from __future__ import annotations

from typing import Optional

import typer

from modelreg.cli.context import AcceptHostKey, JsonOption, RemoteOption, current_settings, ref_of, resolve
from modelreg.cli.output import human_size, print_columns, print_json, stderr, stdout

remote_app = typer.Typer(help="Named remotes (stored in the config file; never credentials).",
                         no_args_is_help=True, rich_markup_mode=None)


@remote_app.command("add")
def remote_add(name: str = typer.Argument(..., help="A short name, e.g. team"),
               urls: list[str] = typer.Argument(..., metavar="URL [URL ...]",
                                                help="file:///path, s3://bucket/prefix or "
                                                     "ssh://user@host:port/path; more than one: fallbacks "
                                                     "tried in order (a configured remote's name copies "
                                                     "its URLs and options)."),
               endpoint_url: Optional[str] = typer.Option(None, help="S3: endpoint of an S3-compatible store."),
               region: Optional[str] = typer.Option(None, help="S3: region."),
               profile: Optional[str] = typer.Option(None, help="S3: AWS profile for credentials."),
               addressing_style: Optional[str] = typer.Option(None, help="S3: path, virtual or auto."),
               identity_file: Optional[str] = typer.Option(None, help="SSH: private key file."),
               default: bool = typer.Option(False, "--default", help="Make this the default remote."),
               json_output: bool = JsonOption) -> None:
    """Add or replace a named remote: one URL, or several tried in order (pull falls back)."""
    from modelreg.fallback import add_remote_places

    settings = current_settings()
    options = {"endpoint_url": endpoint_url, "region": region, "profile": profile,
               "addressing_style": addressing_style, "identity_file": identity_file}
    spec = add_remote_places(settings, name, urls, options, make_default=default)
    if json_output:
        print_json({**remote_row(settings, spec), "config": str(settings.config_path)})
        return
    urls_text = " -> ".join(place.url for place in spec.places)
    stdout.print(f"Remote {spec.name} -> {urls_text}{' (default)' if default else ''} saved in "
                 f"{settings.config_path}.", highlight=False)


def remote_row(settings, spec) -> dict:
    """A remote for --json: `url` (the first), then every place in order with its options."""
    return {"name": spec.name, "url": spec.url, "options": spec.options,
            "urls": [place.url for place in spec.places],
            "places": [{"url": place.url, "options": place.options} for place in spec.places],
            "default": spec.name == settings.default_remote}


def options_text(place) -> str:
    return ", ".join(f"{k}={v}" for k, v in place.options.items())


def places_text(spec) -> tuple[str, str]:
    """(URLs, options) cells for tables: numbered, one line per place when there are several."""
    if not spec.fallbacks:
        return spec.url, options_text(spec)
    places = list(enumerate(spec.places, start=1))
    return ("\n".join(f"{n}. {p.url}" for n, p in places),
            "\n".join(f"{n}. {options_text(p) or '-'}" for n, p in places))


@remote_app.command("show")
def remote_show(name: str = typer.Argument(..., help="A configured remote's name"),
                json_output: bool = JsonOption) -> None:
    """Show one named remote: its URLs in the order pull tries them, with their options."""
    from modelreg.errors import ConfigError

    settings = current_settings()
    if name not in settings.remotes:
        raise ConfigError(f"No remote named {name!r} in {settings.config_path} (configured: "
                          f"{', '.join(sorted(settings.remotes)) or 'none'}). Add it with "
                          f"'modelreg remote add {name} URL [URL ...]'.")
    spec = settings.remotes[name]
    if json_output:
        print_json(remote_row(settings, spec))
        return
    default = " (default)" if spec.name == settings.default_remote else ""
    stdout.print(f"Remote {spec.name}{default}: {len(spec.places)} place(s), tried in this order by pull; "
                 f"push uses the first (--all: each).", highlight=False)
    for number, place in enumerate(spec.places, start=1):
        options = options_text(place)
        stdout.print(f"  {number}. {place.url}{'  ' + options if options else ''}", highlight=False)


@remote_app.command("list")
def remote_list(json_output: bool = JsonOption) -> None:
    """Show the configured remotes and which one is the default."""
    settings = current_settings()
    local = settings.remote(None) if not settings.default_remote else None
    rows = [remote_row(settings, spec) for spec in settings.remotes.values()]
    if json_output:
        print_json({"remotes": rows, "default": settings.default_remote,
                    "local_registry": settings.local_registry.as_uri()})
        return
    from rich.table import Table

    table = Table("name", "url", "options", "default")
    for spec in settings.remotes.values():
        table.add_row(spec.name, *places_text(spec), "yes" if spec.name == settings.default_remote else "")
    stdout.print(table)
    if local is not None:
        stdout.print(f"No default remote: commands use the local registry {local.url}.", highlight=False)


def list_versions(name: Optional[str] = typer.Argument(None, help="Only this model name"),
                  remote: Optional[str] = RemoteOption, accept_new_host_key: bool = AcceptHostKey,
                  json_output: bool = JsonOption) -> None:
    """List the versions on a remote with their tags and sizes.

    Entries that cannot be read (a malformed tag or manifest) are skipped with a
    warning on stderr (and under "broken" in --json); the exit code stays 0.
    """
    from modelreg.remote.catalog import list_remote

    settings, spec = resolve(remote, accept_new_host_key)
    listing = list_remote(settings, spec, name)
    infos = listing.versions
    if json_output:
        print_json({"remote": spec.label, "versions": [info.to_dict() for info in infos],
                    "broken": [entry.to_dict() for entry in listing.broken]})
        return
    if not infos and not listing.broken:
        stdout.print(f"No versions on {spec.label} yet.", highlight=False)
        return
    if infos:
        print_columns(spec.label, ["model", "version", "tags", "size", "created", "manifest", "cached", "yanked"],
                      [[info.manifest.name, info.manifest.version, ", ".join(info.tags),
                        human_size(info.manifest.total_size), info.manifest.created, info.digest[:12],
                        "yes" if info.cached else "", f"YANKED: {info.yanked.reason}" if info.yanked else ""]
                       for info in infos])
    warn_yanked_tags(infos)
    for entry in listing.broken:
        stderr.print(f"Warning: skipped {entry.key}: {entry.error}", highlight=False, soft_wrap=True)
    if listing.broken:
        stderr.print(f"Warning: {len(listing.broken)} entr{'y' if len(listing.broken) == 1 else 'ies'} on "
                     f"{spec.label} could not be read and {'is' if len(listing.broken) == 1 else 'are'} "
                     f"not listed; the rest is complete.", highlight=False, soft_wrap=True)


def show(ref: str = typer.Argument(..., help="[NAME:]VERSION or a tag"),
         remote: Optional[str] = RemoteOption, accept_new_host_key: bool = AcceptHostKey,
         json_output: bool = JsonOption) -> None:
    """Show one version: files, sizes, digests, model, metrics and tags."""
    from modelreg.remote.catalog import describe

    settings, spec = resolve(remote, accept_new_host_key)
    info = describe(settings, ref_of(settings, ref), spec)
    if json_output:
        print_json(info.to_dict())
        return
    m = info.manifest
    stdout.print(f"[bold]{m.ref}[/]  manifest sha256 {info.digest}", highlight=False)
    stdout.print(f"created {m.created}  at {info.location}  tags: {', '.join(info.tags) or '-'}",
                 highlight=False)
    stdout.print(f"signature: {info.signature}", highlight=False)
    if info.yanked:
        stdout.print(f"YANKED: {info.yanked.describe()}", highlight=False, markup=False)
    warn_yanked_tags([info])
    from rich.table import Table

    files = Table("path", "role", "size", "sha256")
    for entry in m.files:
        files.add_row(entry.path, entry.role, human_size(entry.size), entry.sha256)
    stdout.print(files)
    stdout.print(f"model: {m.model.get('family')}  input {m.model.get('input_shape')}  "
                 f"{len(m.model.get('labels', []))} labels: {', '.join(m.model.get('labels', []))}",
                 highlight=False)
    graph = m.model.get("graph")
    if isinstance(graph, dict):
        layers = ", ".join(f"{name} x{count}" for name, count in sorted(graph.get("layers", {}).items()))
        stdout.print(f"graph: sha256 {graph.get('digest')} (Keras {graph.get('keras_major')}): {layers}",
                     highlight=False)
    if m.metrics:
        metrics = Table("metric", "value", title="metrics")
        for key, value in sorted(m.metrics.items()):
            metrics.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        stdout.print(metrics)


def warn_yanked_tags(infos) -> None:
    """A warning on stderr for each tag that points at a yanked version (pulls through it are refused)."""
    for info in infos:
        for tag in info.tags if info.yanked else []:
            stderr.print(f"Warning: tag {info.manifest.name}:{tag} points at {info.manifest.ref}, which is "
                         f"yanked ({info.yanked.reason}); pulls through the tag are refused unless "
                         f"--allow-yanked.", highlight=False, markup=False, soft_wrap=True)


def paths(json_output: bool = JsonOption) -> None:
    """Where this command's config, cache, local registry and workspace (pins, trusted keys) are."""
    settings = current_settings()
    rows = {"config": str(settings.config_path), "cache": str(settings.cache_dir),
            "local_registry": str(settings.local_registry), "workspace": str(settings.workspace),
            "workspace_origin": settings.workspace_origin}
    if json_output:
        print_json(rows)
        return
    for key, value in rows.items():
        stdout.print(f"{key:17} {value}", highlight=False)
