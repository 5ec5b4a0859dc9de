"""Subcommands imported and built only when they run: `modelreg --help` imports no command module.

typer builds the click command of every registered function at each start (inspecting
its signature and parameters), and registering them means importing their modules:
for ~35 commands that was a third of `modelreg --help`. A `LazyCommand` names its
function (or sub-app) by import path and carries the one-line help the top-level
listing shows; `LazyTyperGroup` builds a command the first time it is looked up
(to run it, or for its own --help or shell completion), and lists all of them from
the table without building any. `tests/test_cli_startup.py` checks every entry's help
against the command's own docstring, so the table cannot drift from the code.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
import typer.main
from typer.core import TyperGroup

try:
    from typer._click.utils import make_default_short_help
except ImportError:  # typer before 0.28 uses click itself
    from click.utils import make_default_short_help  # type: ignore[no-redef]

if TYPE_CHECKING:
    from typer import _click as click


@dataclass(frozen=True)
class LazyCommand:
    name: str
    target: str
    """`module:attribute`: a command function, or a `typer.Typer` sub-app (a command group)."""
    help: str
    """The first sentence of its help, as the top-level listing shows it."""


def build_command(entry: LazyCommand) -> click.Command:
    """Import `entry.target` and build its click command, as `app.command(name)` or `add_typer` would."""
    module_name, attribute = entry.target.split(":")
    target = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, typer.Typer):
        command: click.Command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)
        single.command(entry.name)(target)
        command = typer.main.get_command(single)
    command.name = entry.name
    return command


class LazyCommands(MutableMapping):
    """The group's commands by name: the eagerly registered ones, then the lazy ones, built on access.

    Iterating (names, `in`, typo suggestions) builds nothing; looking one up builds that one.
    """

    def __init__(self, eager: MutableMapping[str, click.Command], lazy: tuple[LazyCommand, ...]) -> None:
        self._built = dict(eager)
        self._lazy = {entry.name: entry for entry in lazy if entry.name not in eager}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._built:
            self._built[name] = build_command(self._lazy[name])
        return self._built[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        if self._built.pop(name, None) is None and self._lazy.pop(name, None) is None:
            raise KeyError(name)
        self._lazy.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from self._built
        yield from (name for name in self._lazy if name not in self._built)

    def __len__(self) -> int:
        return len(set(self._built) | set(self._lazy))

    def short_help(self, name: str, limit: int) -> str | None:
        """What the listing shows for `name` (None: hidden), without building a lazy command."""
        if name in self._built:
            command = self._built[name]
            return None if command.hidden else command.get_short_help_str(limit)
        return make_default_short_help(self._lazy[name].help, limit)


class LazyTyperGroup(TyperGroup):
    """A `TyperGroup` whose `lazy_commands` (set by a subclass) are built only when looked up."""

    lazy_commands: tuple[LazyCommand, ...] = ()

    def __init__(self, **attrs) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self.commands, self.lazy_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        commands = self.commands
        assert isinstance(commands, LazyCommands)
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, text) for name in names if (text := commands.short_help(name, limit)) is not None]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
