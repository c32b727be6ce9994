"""Every command and group of the CLI shows a usage example in its --help."""

from __future__ import annotations

from collections.abc import Iterator

import click
from click.testing import CliRunner

from mailbot.cli import cli


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The argument path of every command and group under ``command``, itself included."""
    yield path
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


def test_command_tree_is_walked() -> None:
    # The walk reaches nested commands, so the test below cannot pass by seeing only the root.
    paths = set(walk(cli))
    assert {(), ("run",), ("cases", "list"), ("report", "sla"), ("db",)} <= paths


def test_every_command_help_has_an_example() -> None:
    # `--help` of each command (and group) ends in an Example block of real invocations,
    # kept on their own lines by click's \b paragraph marker.
    missing = []
    for path in walk(cli):
        result = CliRunner().invoke(cli, [*path, "--help"], prog_name="mailbot")
        assert result.exit_code == 0, (path, result.output)
        lines = result.output.splitlines()
        example = next((i for i, line in enumerate(lines) if line.strip() == "Example:"), None)
        if example is None or not any(line.strip().startswith("mailbot ")
                                      for line in lines[example + 1:]):
            missing.append(" ".join(("mailbot", *path)))
    assert not missing, f"no Example in --help of: {', '.join(missing)}"
