"""One place that turns exceptions into a message and an exit code.

Expected failures (`RegistryError`) print their one-paragraph message; anything
else is a bug and shows its traceback only with --debug.
"""

from __future__ import annotations

import functools
import traceback

import typer
from rich.text import Text

from modelreg.cli.output import stderr
from modelreg.errors import RegistryError

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 failure; 2 usage error; 3 verification failed (a digest or size did not "
    "match); 4 untrusted (unsigned, unknown key or host key, downgrade); 5 remote unreachable or "
    "refused; 130 interrupted."
)


class State:
    debug = False
    quiet = False


def handle_errors(command):
    """Wrap a typer command so failures end with a clear message and the documented exit code."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except RegistryError as exc:
            if State.debug:
                traceback.print_exc()
            stderr.print(Text.assemble(("Error: ", "bold red"), str(exc)), soft_wrap=True)
            for note in getattr(exc, "__notes__", []):
                stderr.print(Text(f"  {note}"), soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: not an error
            raise typer.Exit(141) from None
        except KeyboardInterrupt:
            stderr.print("Interrupted; nothing half-written is visible (partial downloads resume).")
            raise typer.Exit(130) from None
        except Exception as exc:  # a bug: say so, keep the traceback for --debug
            if State.debug:
                raise
            stderr.print(Text.assemble(("Internal error: ", "bold red"),
                                       f"{type(exc).__name__}: {exc}. This is a bug in modelreg; "
                                       f"re-run with --debug for the traceback and report it."),
                         soft_wrap=True)
            raise typer.Exit(1) from None
    return wrapper
