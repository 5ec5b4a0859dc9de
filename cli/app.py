"""The `modelreg` command: a thin typer front end over the `registry` library.

Each command parses its arguments, calls one library function and renders the
result. Imports of heavy modules happen inside commands, so `--help`, push and
pull never import tensorflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from modelreg.cli.context import (
    AcceptHostKey,
    AllowYanked,
    JsonOption,
    RemoteOption,
    current_settings,
    key_passphrase,
    ref_of,
    resolve,
)
from modelreg.cli.errors import (
    BROKEN_PIPE,
    EXIT_CODES_HELP,
    INTERRUPTED,
    Interrupted,
    State,
    install_interrupt_handler,
    report,
    show_modelreg_warnings_plainly,
)
from modelreg.cli.lazy_group import LazyCommand, LazyTyperGroup
from modelreg.cli.output import print_json, progress_reporter, stderr, stdout
from modelreg.errors import UsageError


class ModelregGroup(LazyTyperGroup):
    """The top-level group: every command is imported and built only when run
    (`modelreg.cli.lazy_group`); push, pull, tag, verify and keygen are defined below."""

    lazy_commands = tuple(LazyCommand(name, f"modelreg.cli.{target}", help) for name, target, help in (
        ("push", "app:push", "Upload a cached version: missing blobs first, the manifest last (create-only)."),
        ("pull", "app:pull", "Download a version into the verified local cache (and optionally into --dest)."),
        ("tag", "app:tag", "Point TAG at a version on the remote (tags move; versions never change)."),
        ("verify", "app:verify", "Re-hash a cached version, or a directory against its manifest.json / "
                                 "SHA256SUMS / model.sig."),
        ("keygen", "app:keygen", "Create an ECDSA P-256 signing key pair (OpenSSF model-signing compatible)."),
        ("list", "remote_commands:list_versions", "List the versions on a remote with their tags and sizes."),
        ("show", "remote_commands:show", "Show one version: files, sizes, digests, model, metrics and tags."),
        ("paths", "remote_commands:paths", "Where this command's config, cache, local registry and "
                                           "workspace (pins, trusted keys) are."),
        ("ingest", "model_commands:ingest", "Validate existing files and store them as a bundle in the "
                                            "local cache (pinned in the workspace)."),
        ("train", "model_commands:train", "Train the v9 model (WAV2VEC + BiLSTM + self-attention) and "
                                          "bundle it for push."),
        ("predict", "model_commands:predict", "Classify utterances with a verified model (pulled if needed)."),
        ("demo-data", "model_commands:demo_data", "Write a SYNTHETIC dataset shaped like the seed's "
                                                  "(13 emotions, 768 features, <= 221 frames)."),
        ("export", "moving_commands:export", "Write versions from the cache (pulling what is missing) into "
                                             "one tar laid out as a registry."),
        ("import", "moving_commands:import_archive", "Verify every blob and signature of an archive, then "
                                                     "add its versions to the cache (or a remote)."),
        ("copy", "moving_commands:copy", "Copy one version between two registries, verified, without "
                                         "putting it in the cache."),
        ("mirror", "moving_commands:mirror", "Copy every version the destination lacks (each verified, "
                                             "manifest last)."),
        ("delete", "space_commands:delete", "Delete one version from a remote: its manifest first (it "
                                            "disappears at once), then the rest of its directory."),
        ("gc", "space_commands:gc", "Delete the blobs no manifest on the remote references (older than "
                                    "--grace), and abandoned uploads (temp files, incomplete multipart "
                                    "uploads); prints each and the bytes freed."),
        ("yank", "lifecycle_commands:yank", "Withdraw a version: pulls and loads refuse it (with REASON) "
                                            "unless --allow-yanked."),
        ("unyank", "lifecycle_commands:unyank", "Make a yanked version usable again (removes its yank record)."),
        ("tag-history", "lifecycle_commands:tag_history", "List every recorded move of a tag, newest first."),
        ("rollback", "lifecycle_commands:rollback", "Move TAG back to the version it pointed at before "
                                                    "(recorded; a second rollback undoes it)."),
        ("diff", "diff_commands:diff", "Show what differs from A to B: files, labels, model, "
                                       "hyper-parameters, metrics, provenance."),
        ("remote", "remote_commands:remote_app", "Named remotes (stored in the config file; never credentials)."),
        ("cache", "cache_commands:cache_app", "The local cache: what it holds, and freeing space (never "
                                              "pinned or in-use versions)."),
    ))


app = typer.Typer(
    cls=ModelregGroup,
    name="modelreg",
    help="Ship trained models verified: bundle, push, pull and load with sha256 checks.\n\n"
         + EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rendering it with rich costs 0.1 s of every --help
)
GLOBAL_FLAGS = ("--debug", "--quiet", "-q", "--offline")
GLOBAL_OPTIONS = ("--workspace", "--stall-timeout")
"""Global options, accepted before or after the subcommand (`modelreg pull v9 -q`, as in git)."""


def version_callback(value: bool) -> None:
    if value:
        from modelreg import __version__

        stdout.print(f"modelreg {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
         quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or notes."),
         workspace: Optional[str] = typer.Option(
             None, "--workspace", metavar="DIR", help="Where pins and trusted keys live (default: "
             "$MODELREG_WORKSPACE, else the nearest directory at or above here with manifests/)."),
         stall_timeout: Optional[float] = typer.Option(
             None, "--stall-timeout", metavar="SECONDS", help="Give up on a remote that sends no byte "
             "for this long (default: $MODELREG_STALL_TIMEOUT, else stall_timeout in the config, else 30)."),
         offline: bool = typer.Option(False, "--offline", help="Never contact a remote: pull serves "
                                      "cached versions (tags as last seen), other remote commands "
                                      "fail. Also MODELREG_OFFLINE=1."),
         version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    State.debug, State.quiet, State.workspace, State.offline = debug, quiet, workspace, offline
    State.stall_timeout = stall_timeout


def push(ref: str = typer.Argument(..., help="[NAME:]VERSION, e.g. v9"),
         sign: Optional[Path] = typer.Option(None, "--sign", help="Sign with this ECDSA private key "
                                             "(see keygen); default: signing_key in the config."),
         repair: bool = typer.Option(False, "--repair", help="Re-verify every blob on the remote "
                                     "(reading it back) and replace damaged or missing ones, a missing "
                                     "manifest, SHA256SUMS or model.sig, from the verified cache."),
         to_all: bool = typer.Option(False, "--all", help="A remote with fallbacks: push to every one of "
                                     "its URLs in order (default: the first only)."),
         remote: Optional[str] = RemoteOption, accept_new_host_key: bool = AcceptHostKey,
         json_output: bool = JsonOption) -> None:
    """Upload a cached version: missing blobs first, the manifest last (create-only)."""
    from modelreg.cli.transfer_output import push_all_json, push_json, push_line
    from modelreg.fallback import PlacePush, push_to_all, raise_for_push_failures
    from modelreg.transfer import push as push_version

    settings, spec = resolve(remote, accept_new_host_key)
    key = sign or (Path(settings.signing_key).expanduser() if settings.signing_key else None)
    options: dict[str, Any] = {"sign_key": key, "passphrase": key_passphrase(settings, key), "repair": repair}
    with progress_reporter(State.quiet or json_output) as reporter:
        if to_all:
            outcomes = push_to_all(settings, ref_of(settings, ref), spec, reporter=reporter, **options)
        else:
            result = push_version(settings, ref_of(settings, ref), spec, reporter=reporter, **options)
    if not to_all:
        outcomes = [PlacePush(spec.label, result=result)]
    if json_output:
        print_json(push_all_json(outcomes) if to_all else push_json(result))
    for outcome in () if json_output else outcomes:
        if outcome.result is None:
            stdout.line(f"FAILED: {outcome.label} (the error follows)")
        elif outcome.result.repair is not None:
            print_repair(outcome.result)
        else:
            stdout.line(push_line(outcome.result, key is not None))
    raise_for_push_failures(outcomes)


def print_repair(result) -> None:
    """One line per blob that was repaired, then a summary of what was checked, repaired and good."""
    report = result.repair
    for check in report.repaired:
        stdout.print(f"REPAIRED  {check.entry.path}  {check.entry.sha256}  ({check.detail})", highlight=False)
    metadata = ", ".join(f"{name} {state}" for name, state in report.metadata.items())
    stdout.print(f"Repaired {result.manifest.ref} on {result.remote}: {len(report.blobs)} blob(s) checked "
                 f"by reading them back, {len(report.repaired)} replaced from the verified cache, "
                 f"{len(report.good)} good; {metadata}.", highlight=False)


def pull(ref: str = typer.Argument(..., help="[NAME:]VERSION or a tag"),
         dest: Optional[Path] = typer.Option(None, "--dest", "-d",
                                             help="Also write the files here under their original names."),
         allow_downgrade: bool = typer.Option(False, "--allow-downgrade",
                                              help="Accept a tag that moved back to an older version."),
         include: list[str] = typer.Option([], "--include", metavar="PATTERN", help="Fetch only files "
                                           "whose bundle path matches (fnmatch, e.g. '*.npy'; repeatable)."),
         exclude: list[str] = typer.Option([], "--exclude", metavar="PATTERN", help="Leave out files "
                                           "whose bundle path matches (repeatable; wins over --include)."),
         allow_yanked: bool = AllowYanked,
         remote: Optional[str] = RemoteOption, accept_new_host_key: bool = AcceptHostKey,
         json_output: bool = JsonOption) -> None:
    """Download a version into the verified local cache (and optionally into --dest)."""
    from modelreg.cli.transfer_output import pull_json, pull_lines
    from modelreg.transfer import pull as pull_version

    settings, spec = resolve(remote, accept_new_host_key)
    with progress_reporter(State.quiet or json_output) as reporter:
        result = pull_version(settings, ref_of(settings, ref), spec, dest=dest, allow_downgrade=allow_downgrade,
                              allow_yanked=allow_yanked, reporter=reporter, include=tuple(include),
                              exclude=tuple(exclude))
        for note in result.notes:
            reporter.message(f"Warning: {note}")
    if json_output:
        print_json(pull_json(result))
        return
    for line in pull_lines(result, spec):
        stdout.line(line)


def tag(ref: str = typer.Argument(..., help="The version (or tag) to point at"),
        tag_name: str = typer.Argument(..., metavar="TAG", help="Tag name, e.g. production"),
        remote: Optional[str] = RemoteOption, accept_new_host_key: bool = AcceptHostKey,
        json_output: bool = JsonOption) -> None:
    """Point TAG at a version on the remote (tags move; versions never change)."""
    from modelreg.layout import check_name
    from modelreg.tag_moves import move_tag

    settings, spec = resolve(remote, accept_new_host_key)
    moved = move_tag(settings, ref_of(settings, ref), check_name(tag_name, "tag"), spec)
    new_tag = moved.tag
    for note in moved.notes:
        stderr.print(f"Warning: {note}", highlight=False, markup=False, soft_wrap=True)
    if json_output:
        print_json({"name": new_tag.name, "tag": new_tag.tag, "version": new_tag.version,
                    "manifest_sha256": new_tag.manifest_sha256, "remote": spec.label, "notes": moved.notes,
                    "record": moved.move.to_dict() if moved.move else None})
        return
    stdout.print(f"Tag {new_tag.name}:{new_tag.tag} -> {new_tag.version} (manifest "
                 f"{new_tag.manifest_sha256[:12]}) on {spec.label}.", highlight=False)


def verify(target: str = typer.Argument(..., help="A cached version (v9) or a directory from pull --dest"),
           trusted_key: list[Path] = typer.Option([], "--trusted-key", help="Require model.sig from this "
                                                  "public key (repeatable; adds to the configured ones)."),
           json_output: bool = JsonOption) -> None:
    """Re-hash a cached version, or a directory against its manifest.json / SHA256SUMS / model.sig."""
    from modelreg.verify import verify_cached, verify_directory

    settings = current_settings()
    with progress_reporter(State.quiet or json_output) as reporter:
        if Path(target).is_dir():
            report = verify_directory(Path(target), settings, trusted_keys=trusted_key, reporter=reporter)
        else:
            report = verify_cached(settings, ref_of(settings, target), reporter=reporter)
    signature = report.signature.describe() if report.signature else "unsigned"
    if json_output:
        print_json({"subject": report.subject, "ok": report.ok, "untracked": list(report.untracked),
                    "signature": signature,
                    "files": [{"path": c.path, "sha256": c.actual, "ok": c.ok} for c in report.checks]})
        return
    for check in report.checks:
        stdout.print(f"OK  {check.path}  {check.expected}", highlight=False)
    for path in report.untracked:
        stdout.print(f"??  {path}  (not in the manifest)", highlight=False)
    stdout.print(f"All {len(report.checks)} file(s) of {report.subject} verified; {signature}.",
                 highlight=False)


def keygen(path: Path = typer.Argument(..., help="Private key file to create; PATH.pub gets the public key"),
           passphrase: bool = typer.Option(False, "--passphrase", help="Encrypt the private key "
                                           "(asks on the terminal, or reads MODELREG_KEY_PASSPHRASE).")) -> None:
    """Create an ECDSA P-256 signing key pair (OpenSSF model-signing compatible)."""
    from modelreg.trust.keys import generate_keypair, key_fingerprint, load_public_key

    secret = key_passphrase(current_settings(), path, ask=passphrase, confirm=True) if passphrase else None
    if passphrase and not secret:
        raise UsageError("--passphrase needs a terminal to ask on, or MODELREG_KEY_PASSPHRASE set; "
                         "no key was written.")
    private, public = generate_keypair(path, secret)
    stdout.print(f"Wrote {private} (private, mode 0600) and {public} (public), fingerprint "
                 f"{key_fingerprint(load_public_key(public))}. Share the .pub; trust it by copying it "
                 f"to manifests/trusted_keys/.", highlight=False)


def hoist_global_options(args: list[str]) -> list[str]:
    """Move global options found after the subcommand to the front (nothing after `--` moves)."""
    front, rest = [], []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest += args[index:]
            break
        if arg in GLOBAL_FLAGS:
            front.append(arg)
        elif arg in GLOBAL_OPTIONS and index + 1 < len(args):
            front += args[index:index + 2]
            index += 1
        elif arg.split("=", 1)[0] in GLOBAL_OPTIONS:
            front.append(arg)
        else:
            rest.append(arg)
        index += 1
    return front + rest


def main(argv: Optional[list[str]] = None) -> None:
    """The `modelreg` entry point: every failure is caught here once (see `cli/errors.py`)."""
    import os
    import signal
    import sys

    from typer.exceptions import Abort, TyperException

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no TensorFlow C++ start-up lines
    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    previous_handler = install_interrupt_handler()
    show_modelreg_warnings_plainly()
    try:
        code = app(args=args, prog_name="modelreg", standalone_mode=False)
    except TyperException as exc:  # usage errors found while parsing: click's message, exit 2
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            stderr.print(f"Error: {exc.format_message()}", highlight=False)
        code = exc.exit_code
    except Abort:  # Ctrl-C at a prompt
        code = report(KeyboardInterrupt())
    except BrokenPipeError:  # stdout closed early (piped into head): quiet, as shells report SIGPIPE
        sys.stderr.close()
        code = BROKEN_PIPE
    except (Exception, KeyboardInterrupt, Interrupted) as exc:
        code = report(exc)
    if code == INTERRUPTED:
        exit_interrupted()
    if previous_handler is not None:
        signal.signal(signal.SIGINT, previous_handler)  # type: ignore[arg-type]
    code = code if isinstance(code, int) else 0
    if argv is None:  # the process's own entry point (not a caller's `main([...])`)
        exit_without_shutdown(code)
    sys.exit(code)


def _flush_std_streams() -> bool:
    """Flush stdout and stderr; False when either cannot be flushed (closed, broken pipe)."""
    import sys

    flushed = True
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            flushed = False
    return flushed


def exit_without_shutdown(code: int) -> None:
    """Exit with `code` at once when the interpreter's shutdown has nothing left to do but tear down.

    Tearing down the modules a transfer loaded (paramiko, botocore, cryptography...) took
    ~27 ms of a 0.23 s `modelreg pull` over SSH (strace: from the result line to exit_group).
    What shutdown does that matters is done first: the atexit callbacks (holds released,
    temporary directories removed, logging flushed) and the flush of stdout and stderr.
    Returns instead, leaving the exit to Python, while a non-daemon thread is still running
    (shutdown would join it), under a profiler or tracer (`python -m cProfile` writes its
    results after the program returns), or when a stream cannot be flushed.
    """
    import atexit
    import os
    import sys
    import threading

    if sys.getprofile() is not None or sys.gettrace() is not None:
        return
    main_thread = threading.main_thread()
    if any(thread is not main_thread and not thread.daemon and thread.is_alive()
           for thread in threading.enumerate()):
        return
    atexit._run_exitfuncs()
    if _flush_std_streams():
        os._exit(code)


def exit_interrupted(grace: float = 1.0) -> None:
    """Exit 130 within about `grace` seconds of Ctrl-C, even with transfers still in flight.

    The transfers were cancelled (`Storage.cancel`) and stop at their next chunk, removing
    their temp files; the threads get `grace` seconds for that. A thread still blocked in
    a read from a slow or silent server is then abandoned: the process exits without
    Python's shutdown, which would join it. Downloads keep the bytes already received in
    their `.partial` file (a prefix of the blob), so the next pull resumes.
    """
    import os
    import threading
    import time

    deadline = time.monotonic() + grace
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    _flush_std_streams()
    os._exit(INTERRUPTED)
