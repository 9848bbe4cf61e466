"""The documentation can't drift from the code: its Python runs and its commands parse.

- The README's Python blocks run as printed, in a fresh working directory that sees the
  repository's ``recipes/`` and ``examples/``; a block that can't run here is marked by an HTML
  comment right above it, ``<!-- not run: why -->``, and only such a block is skipped.
- Every Python block of the docs pages is valid Python.
- Every ``embed ...`` command line of the README, the docs pages (code blocks and inline code) and
  the recipes' comments names a real subcommand and parses with that subcommand's own parser,
  without running it; ``torchrun ... -m embedding.commands`` and ``srun embed`` lines count too.
- Every ``embed fit`` command of the README and the docs that changes a recipe names its own run
  folder (``--trainer.default_root_dir``), so documented commands never share one.
- Every ``python benchmarks/*.py``, ``docs/*.py`` or ``tools/*.py`` script they name exists.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonargparse
import pytest

from embedding.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").rglob("*.md"))
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
QUICK_START = shlex.split('fit --config recipes/reconstruct.yaml --model.steps "{WI: 200, Mkn: 100}"')
HELP = {"--help", "-h", "--help-all", "--print_config"}
# What an inline command in prose may leave out: it names options, the reader supplies the rest.
PARTIAL = ("the following arguments are required", "expected one argument")

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->\s*$", re.S)
INLINE = re.compile(r"`((?:embed|srun embed) [^`]+)`")
SCRIPT = re.compile(r"python ((?:benchmarks|docs|tools)/[\w/.-]+\.py)")


@dataclass
class Block:
    source: Path
    line: int
    language: str
    code: str
    not_run: str | None  # the reason, when the block is marked as not run


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, each with the reason of its ``not run`` marker, if any."""
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = NOT_RUN.search(before)
        found.append(Block(path, text.count("\n", 0, match.start()) + 1, match.group(1), match.group(2),
                           marker.group(1) if marker else None))
    return found


@dataclass
class Command:
    source: str   # file:line
    tokens: list[str]
    inline: bool  # from inline code in prose (may be a bare name such as `embed edit morph`)
    recipe: bool  # from a recipe's comments


def logical_lines(code: str) -> list[tuple[int, str]]:
    """Lines with their ``\\`` continuations joined, each with its 0-based first line."""
    joined, start, buffer = [], 0, ""
    for i, line in enumerate(code.split("\n")):
        if not buffer:
            start = i
        if line.rstrip().endswith("\\"):
            buffer += line.rstrip()[:-1] + " "
            continue
        joined.append((start, buffer + line))
        buffer = ""
    if buffer:
        joined.append((start, buffer))
    return joined


def embed_tokens(line: str) -> list[str] | None:
    """The arguments after ``embed`` of a shell line that runs it (else None), comments and placeholders removed.

    ``[--option value]`` (an optional part) is unwrapped; ``...`` is dropped; ``VAR=value``
    prefixes, ``srun`` and ``torchrun ... -m embedding.commands`` are looked through.
    """
    line = re.sub(r"(?<=\s)\[(--[^\]]*)\]", r"\1", line)
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return None
    while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):
        tokens = tokens[1:]
    if tokens[:1] == ["srun"]:
        tokens = tokens[1:]
    if tokens[:1] == ["torchrun"] and "-m" in tokens:
        at = tokens.index("-m")
        if tokens[at + 1] != "embedding.commands":
            return None
        tokens = ["embed", *tokens[at + 2:]]
    if not tokens or not re.fullmatch(r"embed(-\w+)?", tokens[0]):
        return None
    if tokens[0] != "embed":
        return [tokens[0]]  # a program that does not exist, e.g. embed-train: reported as not a subcommand
    return [t for t in tokens[1:] if t != "..."]


def documented_commands() -> list[Command]:
    commands = []
    for path in [README, *PAGES]:
        name = path.relative_to(ROOT)
        text = path.read_text()
        for block in blocks(path):
            if block.language not in ("bash", "sh", "shell", "console", ""):
                continue
            for offset, line in logical_lines(block.code):
                tokens = embed_tokens(line)
                if tokens is not None:
                    commands.append(Command(f"{name}:{block.line + 1 + offset}", tokens, False, False))
        prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
        for match in INLINE.finditer(prose):
            tokens = embed_tokens(match.group(1).replace("\n", " "))
            if tokens is not None:
                commands.append(Command(f"{name}:{text.count(chr(10), 0, match.start()) + 1}", tokens, True, False))
    for path in RECIPES:
        lines = path.read_text().split("\n")
        comments = [(i, re.sub(r"^\s*#\s?", "", line)) for i, line in enumerate(lines) if line.lstrip().startswith("#")]
        code = "\n".join(text for _, text in comments)
        for offset, line in logical_lines(code):
            tokens = embed_tokens(line.strip())
            if tokens is not None:
                commands.append(Command(f"{path.relative_to(ROOT)}:{comments[offset][0] + 1}", tokens, False, True))
    return commands


COMMAND_LINES = documented_commands()


class Parsed(BaseException):
    """Raised right after a command's own parser has parsed its arguments, so that nothing runs."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


ORIGINAL = {cls: cls.parse_args for cls in (argparse.ArgumentParser, jsonargparse.ArgumentParser)}
LIGHTNING = {"fit", "train"}  # LightningCLI commands: lines of one recipe are parsed together
KEEP = {*LIGHTNING, "edit"}   # commands whose parser is built once and kept (their main adds nothing to it)
KEPT: dict[str, jsonargparse.ArgumentParser] = {}


@pytest.fixture
def parse_only(monkeypatch: pytest.MonkeyPatch):
    """``parse_args`` of argparse and jsonargparse parsers parses, then raises :class:`Parsed`."""
    depth = [0]

    def patched(original):
        def parse_args(self, *args, **kwargs):
            depth[0] += 1
            try:
                result = original(self, *args, **kwargs)
            finally:
                depth[0] -= 1
            if depth[0] == 0:
                raise Parsed(self)
            return result
        return parse_args

    for cls, original in ORIGINAL.items():
        monkeypatch.setattr(cls, "parse_args", patched(original))
    monkeypatch.setattr(sys, "argv", ["embed"])
    monkeypatch.chdir(ROOT)


def normalise(tokens: list[str]) -> list[str] | None:
    """Placeholders a parser can't take made concrete; None when the line can only be name-checked."""
    out = []
    for token in tokens:
        if re.fullmatch(r"recipes/<[^>]+>\.yaml", token):
            token = "recipes/reconstruct.yaml"
        elif "<" in token and token.endswith(".yaml"):
            return None  # a run folder's config.yaml: exists only after a run
        out.append(token)
    return out


def parse(tokens: list[str]) -> None:
    """Parse ``embed <tokens>`` with the subcommand's own parser; raise on a parse error."""
    name, rest = tokens[0], tokens[1:]
    module = importlib.import_module(f"embedding.commands.{name}")
    try:
        if name in KEPT:
            KEPT[name].parse_args(["fit", *rest] if name == "fit" else rest)
        else:
            module.main(rest)
    except Parsed as parsed:
        if name in KEEP:
            KEPT[name] = parsed.parser
        return
    raise AssertionError("the command ran past its parser")


def test_commands_are_found():
    """The extraction sees the documented commands (a regex gone wrong would pass everything)."""
    sources = {c.source.split(":")[0] for c in COMMAND_LINES}
    assert "README.md" in sources and "docs/fit.md" in sources
    assert any(c.recipe for c in COMMAND_LINES) and any(c.inline for c in COMMAND_LINES)
    assert any(c.tokens[:1] == ["fit"] for c in COMMAND_LINES if c.source.startswith("README.md"))
    assert len(COMMAND_LINES) > 50


def config_of(tokens: list[str]) -> str | None:
    """The recipe a ``fit`` or ``train fit`` line names with ``--config``, else None."""
    at = tokens.index("--config") if "--config" in tokens else -1
    return tokens[at + 1] if 0 <= at < len(tokens) - 1 and not tokens[at + 1].startswith("-") else None


def merged(group: list[list[str]]) -> list[str]:
    """One line with the options of every line of ``group`` (one recipe's): one parse checks every name and value.

    jsonargparse checks each value as it applies it, so a later value of the same key does not hide
    an earlier, wrong one; parsing a recipe once instead of once a line keeps the test fast.
    """
    head = group[0][: next(i for i, t in enumerate(group[0]) if t.startswith("-"))]
    options = []
    for tokens in group:
        at = tokens.index("--config")
        options += [t for i, t in enumerate(tokens[len(head):], len(head)) if i not in (at, at + 1)]
    return [*head, "--config", config_of(group[0]), *options]


def test_documented_commands_parse(parse_only, capsys):
    """Every ``embed`` command line names a subcommand that exists and parses with its own parser."""
    problems, lines = [], {}
    for command in COMMAND_LINES:
        tokens = command.tokens
        if tokens[:1] in (["--help"], ["-h"]):
            continue
        if not tokens or tokens[0] not in COMMANDS:
            problems.append(f"{command.source}: {tokens[0]!r} is not a command of embed ({', '.join(COMMANDS)})"
                            if tokens else f"{command.source}: embed without a command")
            continue
        if tokens[0] in ("edit", "swap", "train") and len(tokens) > 1 and not tokens[1].startswith("-"):
            module = importlib.import_module(f"embedding.commands.{tokens[0]}")
            if tokens[1] not in getattr(module, "COMMANDS", {"fit": None}):
                problems.append(f"{command.source}: embed {tokens[0]} has no subcommand {tokens[1]!r}")
                continue
        if HELP & set(tokens) or (command.inline and not any(t.startswith("--") for t in tokens)):
            continue  # help, or a name in prose such as `embed edit morph`
        tokens = normalise(tokens)
        if tokens is not None:
            lines.setdefault(tuple(tokens), []).append(command)

    def attempt(tokens: list[str], inline: bool) -> str | None:
        try:
            parse(tokens)
        except SystemExit as e:
            error = capsys.readouterr().err.strip()
            return None if inline and any(reason in error for reason in PARTIAL) else f"exit {e.code}: {error[-400:]}"
        except Exception as e:  # noqa: BLE001 - every failure is reported with its line
            return f"{type(e).__name__}: {e}"
        return None

    groups: dict[tuple, list[list[str]]] = {}
    for tokens, commands in lines.items():
        if tokens[0] in LIGHTNING and config_of(list(tokens)) and not any(c.inline for c in commands):
            groups.setdefault((tokens[0], config_of(list(tokens))), []).append(list(tokens))
        else:
            groups[tokens] = [list(tokens)]
    for group in groups.values():
        if len(group) > 1 and attempt(merged(group), False) is None:
            continue
        for tokens in group:
            commands = lines[tuple(tokens)]
            error = attempt(tokens, all(c.inline for c in commands))
            if error:
                problems.append(f"{commands[0].source}: embed {shlex.join(tokens)}: {error}")
    assert not problems, "\n".join(problems)


def test_documented_fits_have_their_own_run_folder():
    """An ``embed fit`` of the README or the docs that changes a recipe writes into a folder of its own."""
    shared = []
    for command in COMMAND_LINES:
        tokens = command.tokens
        if command.recipe or tokens[:1] != ["fit"] or tokens == QUICK_START:
            continue
        options = {t.split("=")[0] for t in tokens if t.startswith("--")}
        if options & HELP or not options - {"--config"}:
            continue
        if "--trainer.default_root_dir" not in options:
            shared.append(f"{command.source}: embed {shlex.join(tokens)}")
    assert not shared, "no --trainer.default_root_dir:\n" + "\n".join(shared)


def test_named_scripts_exist():
    missing = []
    for path in [README, *PAGES, *RECIPES]:
        for match in SCRIPT.finditer(path.read_text()):
            if not (ROOT / match.group(1)).is_file():
                missing.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert not missing, "\n".join(missing)


def test_not_run_markers_say_why():
    for path in [README, *PAGES]:
        for block in blocks(path):
            if block.not_run is not None:
                assert len(block.not_run) > 10, f"{path.name}:{block.line}: a not-run marker must say why"


def test_docs_python_blocks_are_python():
    for path in PAGES:
        for block in blocks(path):
            if block.language == "python":
                ast.parse(block.code, f"{path.relative_to(ROOT)}:{block.line}")


def test_readme_python_runs(tmp_path, monkeypatch):
    """The README's Python blocks run as printed, from a folder that sees the repository's recipes and photos."""
    runnable = [b for b in blocks(README) if b.language == "python" and b.not_run is None]
    assert runnable, "the README has no Python block that runs"
    for name in ("recipes", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["python"])
    for block in runnable:
        exec(compile(block.code, f"README.md:{block.line}", "exec"), {"__name__": "readme"})  # noqa: S102


def slug(heading: str) -> str:
    """The anchor GitHub and the docs site give a heading (the same for the headings used here)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_links_resolve():
    """The README's links and images name files of the repository, and its anchors headings of those files.

    (``mkdocs build --strict`` checks the links of the docs pages; the README is outside the site.)
    """
    broken = []
    text = FENCE.sub("", README.read_text())
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path if path else README
        if not file.exists():
            broken.append(target)
        elif anchor and anchor not in {slug(h) for h in re.findall(r"^#+ (.+)$", file.read_text(), re.M)}:
            broken.append(target)
    assert not broken, broken
