"""One table from exception classes to exit codes, and the one place failures are rendered.

`main()` (in `app.py`) catches everything once and calls `exit_code_for`; no command
handles errors itself. Expected failures (`RegistryError`) print their one-paragraph
message; anything else is a bug and shows its traceback only with --debug.
"""

from __future__ import annotations

import traceback

from modelreg.cli.output import stderr, stderr_may_be_terminal
from modelreg.errors import IntegrityError, RegistryError, RemoteError, UntrustedError, UsageError

EXIT_CODES: tuple[tuple[type[BaseException], int, str], ...] = (
    (UsageError, 2, "usage error"),
    (IntegrityError, 3, "verification failed (a digest, size or pin did not match)"),
    (UntrustedError, 4, "untrusted (unsigned, unknown key or host key, downgrade, yanked)"),
    (RemoteError, 5, "remote unreachable or refused"),
    (RegistryError, 1, "failure"),
)
"""First match wins, so subclasses come before their bases."""

INTERRUPTED, BROKEN_PIPE, BUG = 130, 141, 1

EXIT_CODES_HELP = ("Exit codes: 0 ok; " + "; ".join(f"{code} {label}" for _cls, code, label in
                                                    sorted(EXIT_CODES, key=lambda row: row[1]))
                   + f"; {INTERRUPTED} interrupted; {BROKEN_PIPE} output closed early (e.g. piped "
                     f"into head).")


class Interrupted(BaseException):
    """Ctrl-C (SIGINT), as raised by the CLI's handler (`install_interrupt_handler`).

    Not a KeyboardInterrupt, which click would turn into `Abort` after printing an empty
    line; a BaseException, so that no `except Exception` swallows it.
    """


def install_interrupt_handler() -> object:
    """On the first SIGINT raise `Interrupted` in the main thread; ignore every later one, so a
    second or third Ctrl-C cannot interrupt the shutdown (and print a traceback from it).

    Returns the handler it replaced, for `signal.signal` to restore (None outside the main
    thread, where nothing is installed).
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(_signum, _frame) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise Interrupted()

    return signal.signal(signal.SIGINT, interrupt)


class State:
    """Global options, set once by the root callback."""

    debug = False
    quiet = False
    offline = False
    workspace: str | None = None
    stall_timeout: float | None = None


def exit_code_for(exc: BaseException) -> int:
    for cls, code, _label in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return BUG


def report(exc: BaseException) -> int:
    """Print what went wrong (traceback only with --debug) and return the exit code."""
    if State.debug:
        traceback.print_exception(exc)
    if isinstance(exc, (KeyboardInterrupt, Interrupted)):
        stderr.line("Interrupted; nothing half-written is visible (partial downloads resume).")
        return INTERRUPTED
    if isinstance(exc, RegistryError):
        print_error("Error: ", str(exc))
        for note in getattr(exc, "__notes__", []):
            print_error("", f"  {note}")
        return exit_code_for(exc)
    if not State.debug:
        print_error("Internal error: ", f"{type(exc).__name__}: {exc}. This is a bug in modelreg; re-run "
                                        f"with --debug for the traceback and report it.")
    return BUG


_RICH_STRIPS = dict.fromkeys((7, 8, 11, 12, 13))
"""The control characters rich removes from any `Text` (bell, backspace, VT, FF, CR)."""


def print_error(label: str, text: str) -> None:
    """`label` in bold red, then `text` as it is (never read as markup), one paragraph on stderr.

    rich only where stderr may be a terminal: elsewhere the same characters are written
    directly, so a failing command in a script or CI does not import rich (30 ms).
    """
    if not stderr_may_be_terminal():
        stderr.line(f"{label}{text}".translate(_RICH_STRIPS))
        return
    from rich.text import Text

    stderr.print(Text.assemble((label, "bold red"), text), soft_wrap=True)


def show_modelreg_warnings_plainly() -> None:
    """Render the library's own warnings (e.g. a cached version loaded while the remote was
    unreachable) as one `Warning: ...` paragraph on stderr, even with --quiet; others as usual."""
    import warnings

    from modelreg.errors import RemoteUnreachableWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, RemoteUnreachableWarning):
            stderr.print(f"Warning: {message}", highlight=False)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
