"""Every concrete ``sapnet-export`` / ``sapnet-train`` command in README.md and docs/*.md parses against
the CLI as written: the command exists, every option exists, and every value has the option's type
(click's own parser, with the toolkit's option callbacks; nothing is run). Synopsis lines, which hold
``[...]`` or ``|``, are skipped; the commands that are run end to end are tested where their features
are (the README quickstart in tests/cli/test_app.py)."""

import re
import shlex
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROGRAMS = ("sapnet-export", "sapnet-train")


def documented_commands() -> list[tuple[str, str]]:
    """``(file:line, command)`` of each command line (with its ``\\`` continuations) in a code block."""
    found = []
    for path in DOCS:
        lines, in_fence = path.read_text().splitlines(), False
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.lstrip().startswith("```"):
                in_fence = not in_fence
            text = line.strip()
            code = in_fence or line.startswith("    ")
            if code and text.startswith(PROGRAMS):
                start, parts = i, [text]
                while parts[-1].endswith("\\") and i + 1 < len(lines):
                    i += 1
                    parts[-1] = parts[-1][:-1]
                    parts.append(lines[i].strip())
                command = re.sub(r"\s+#.*$", "", " ".join(parts)).strip()
                if not re.search(r"[\[\]|]|\.\.\.|<", command):  # a synopsis, not a command
                    found.append((f"{path.relative_to(ROOT)}:{start + 1}", command))
            i += 1
    return found


def _resolve(args: list[str]):  # noqa: ANN202 - (click command, its arguments, its name)
    from sapnet_export.cli import app as export_app
    from training.cli import app as train_app

    program, *rest = args
    command = typer.main.get_command(export_app if program == "sapnet-export" else train_app)
    name = program
    while hasattr(command, "list_commands") and rest and not rest[0].startswith("-"):  # a group
        sub = command.get_command(command.context_class(command), rest[0])
        assert sub is not None, f"{' '.join(args)}: no command {rest[0]!r} in {name}"
        command, name, rest = sub, f"{name} {rest[0]}", rest[1:]
    return command, rest, name


COMMANDS = documented_commands()


def test_the_docs_hold_commands():
    files = {where.split(":")[0] for where, _ in COMMANDS}
    assert len(COMMANDS) >= 20 and {"README.md", "docs/commands.md", "docs/serving.md"} <= files, COMMANDS


@pytest.mark.parametrize("where, command", COMMANDS, ids=[where for where, _ in COMMANDS])
def test_documented_command_parses(where, command):
    command_obj, rest, name = _resolve(shlex.split(command))
    try:
        command_obj.make_context(name, rest)
    except Exception as exc:  # noqa: BLE001 - click's usage errors (typer vendors click)
        message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
        pytest.fail(f"{where}: {command}\n  -> {message}")
