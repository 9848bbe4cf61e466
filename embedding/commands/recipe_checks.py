"""Checks ``embed fit`` and ``embed train`` make before they build anything: unknown keys, and the networks named.

jsonargparse reports a misspelt key of a subclass-typed section (``--model.stpes``) as a failure of
every type the section could take, with the whole usage; this says the key and what was meant, in
one line. Keys are checked on the command line and in every ``--config`` file, section by section;
the model's keys are the init parameters of the class ``model.class_path`` names. The networks a
model section names (``generator``, ``discriminator``, ``encoder``) are found, not loaded, so a
wrong name fails in a second rather than after the set-up.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentParser, Namespace

from embedding.checkpoints import resolve_file
from embedding.images import NoUsableImageError, resolve_images

MODEL_OWN_KEYS = frozenset({"class_path", "init_args", "dict_kwargs", "help"})


class UnknownOption(ValueError):
    """A key no section of the recipe takes; the message names it, where it was written and the nearest valid one."""


def check_keys(parser: ArgumentParser, args: Sequence[str], prog: str, default_model: str, base: type) -> None:
    """Raise ``UnknownOption`` for the first unknown ``--section.key`` in ``args`` or key in a ``--config`` file.

    ``parser`` is LightningCLI's (its ``fit`` subcommand's options are the valid keys); the model's
    are those of the class ``model.class_path`` names (``default_model`` when none does; a short name
    is looked up among the subclasses of ``base``).
    """
    args = list(args)
    if any(a in ("-h", "--help") for a in args) or "fit" not in args:
        return
    fit = parser._subcommands_action.choices["fit"]
    keys = _Keys(fit, _model_class(args, default_model, base))
    for option, _ in _options(args[args.index("fit") + 1:]):
        if option in ("config", "c"):
            continue
        if any(s.startswith(f"--{option}") for s in keys.option_strings):
            continue  # a key, or an abbreviation argparse takes for one
        unknown = keys.unknown(option.split("."))
        if unknown:
            path, valid = unknown
            hint = _hint(path[-1], valid, ".".join(path[:-1]))
            raise UnknownOption(f"{prog}: unknown option {'.'.join(path)} (in --{option}); {hint}")
    for config in _config_files(args):
        data = _read_yaml(config)
        if isinstance(data, dict):
            unknown = keys.unknown_in(data, [])
            if unknown:
                path, valid = unknown
                raise UnknownOption(f"{config}: unknown key {'.'.join(path)}; {_hint(path[-1], valid, '')}")


def _hint(key: str, valid: Iterable[str], prefix: str) -> str:
    """``did you mean <nearest>?``, or where the valid keys are listed."""
    close = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
    if close:
        return f"did you mean {prefix + '.' if prefix else ''}{close[0]}?"
    return f"valid keys here: {', '.join(sorted(valid))}"


class _Keys:
    """The keys of one subcommand's parser, and the model class's init parameters."""

    def __init__(self, parser: ArgumentParser, model_class: type | None) -> None:
        actions = [a for a in parser._actions if not a.dest.endswith(".help") and a.dest != "help"]
        self.dests = {a.dest: a for a in actions}
        self.option_strings = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
        self.model_class = model_class
        self._model_keys: set[str] | None = None

    def model_keys(self) -> set[str] | None:
        """The init parameters of the model class (None when it is not known: jsonargparse reports that)."""
        if self._model_keys is None and self.model_class is not None:
            parser = ArgumentParser(exit_on_error=False)
            parser.add_class_arguments(self.model_class, "model", fail_untyped=False, sub_configs=True)
            self._model_keys = {a.dest.split(".")[1] for a in parser._actions if a.dest.startswith("model.")}
        return self._model_keys

    def children(self, prefix: str) -> set[str]:
        """The next components of the keys under ``prefix`` ("" for the top level)."""
        depth = prefix.count(".") + 1 if prefix else 0
        head = f"{prefix}." if prefix else ""
        return {d.split(".")[depth] for d in self.dests if d.startswith(head)}

    def unknown(self, parts: list[str]) -> tuple[list[str], set[str]] | None:
        """For a dotted key: the path up to its first unknown component and the valid ones there, or None."""
        for i in range(len(parts)):
            dest = ".".join(parts[: i + 1])
            if dest == "model":
                return self._unknown_model(parts[i + 1:])
            if dest in self.dests and type(self.dests[dest]).__name__ != "_ActionConfigLoad":
                return None  # a value (perhaps a class or a dict) whose inner keys jsonargparse checks itself
            if not self.children(dest):
                return parts[: i + 1], self.children(".".join(parts[:i]))
        return None

    def _unknown_model(self, parts: list[str]) -> tuple[list[str], set[str]] | None:
        valid = self.model_keys()
        if not parts or valid is None or parts[0] in ("class_path", "dict_kwargs", "help"):
            return None
        if parts[0] == "init_args":
            if len(parts) > 1 and parts[1] not in valid:
                return ["model", "init_args", parts[1]], valid
            return None
        return None if parts[0] in valid else (["model", parts[0]], valid | {"class_path", "init_args"})

    def unknown_in(self, data: dict, path: list[str]) -> tuple[list[str], set[str]] | None:
        """For a YAML mapping at ``path``: the first unknown key's path and the valid keys beside it, or None."""
        for key, value in data.items():
            here = [*path, str(key)]
            dest = ".".join(here)
            if dest == "model":
                found = self._unknown_model_mapping(value) if isinstance(value, dict) else None
            elif dest in self.dests and type(self.dests[dest]).__name__ != "_ActionConfigLoad":
                found = None
            elif not self.children(dest):
                return here, self.children(".".join(path))
            else:
                found = self.unknown_in(value, here) if isinstance(value, dict) else None
            if found:
                return found
        return None

    def _unknown_model_mapping(self, model: dict) -> tuple[list[str], set[str]] | None:
        valid = self.model_keys()
        if valid is None:
            return None
        init_args = model.get("init_args")
        if isinstance(init_args, dict):
            for key in init_args:
                if key not in valid:
                    return ["model", "init_args", str(key)], valid
        for key in model:
            if key not in valid and key not in MODEL_OWN_KEYS:
                return ["model", str(key)], valid | {"class_path", "init_args"}
        return None


def _options(args: Sequence[str]) -> list[tuple[str, str | None]]:
    """The ``--key`` options of ``args`` (without the dashes), each with its value when one follows."""
    found = []
    for i, arg in enumerate(args):
        if arg.startswith("--") and len(arg) > 2:
            key, eq, value = arg[2:].partition("=")
            following = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else None
            found.append((key.rstrip("+"), value if eq else following))
        elif arg == "-c":
            found.append(("c", args[i + 1] if i + 1 < len(args) else None))
    return found


def _config_files(args: Sequence[str]) -> list[Path]:
    """The ``--config`` files of ``args``, in order (a YAML string in their place is not a file, and left out)."""
    return [Path(v) for k, v in _options(args) if k in ("config", "c") and v is not None and Path(v).is_file()]


def _read_yaml(path: Path) -> Any:
    """The contents of a YAML file, or None when it cannot be read (jsonargparse reports that)."""
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def given_on_command_line(args: Sequence[str], key: str) -> bool:
    """Whether ``--key`` (dotted) is among ``args`` itself, not taken from a ``--config`` file."""
    return any(k == key for k, _ in _options(args))


def from_config_files(args: Sequence[str], *paths: str) -> Any:
    """The value the ``--config`` files of ``args`` give the first of the dotted ``paths`` any sets (last file wins)."""
    value = None
    for config in _config_files(args):
        data = _read_yaml(config)
        for path in paths:
            found = _lookup(data, path.split("."))
            if found is not None:
                value = found
                break
    return value


def _lookup(data: Any, parts: list[str]) -> Any:
    for part in parts:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _model_class(args: Sequence[str], default: str, base: type) -> type | None:
    """The class the model section names (command line, else the last config file, else ``default``)."""
    name = default
    for config in _config_files(args):
        model = _lookup(_read_yaml(config), ["model"])
        name = _class_named(model) or name
    for key, value in _options(args):
        if key in ("model", "model.class_path") and value:
            name = _class_named(_parse_yaml(value)) or name
    return _import_class(name, base)


def _class_named(model: Any) -> str | None:
    """The class a model section names: a class path given alone, or its ``class_path`` key."""
    if isinstance(model, dict):
        model = model.get("class_path")
    return model if isinstance(model, str) else None


def _parse_yaml(text: str) -> Any:
    """A command-line value as YAML (a mapping, or a plain string), or the text itself when it is not YAML."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _import_class(name: str, base: type) -> type | None:
    """The class ``name`` (a class path, or a short name among the loaded subclasses of ``base``), or None."""
    if "." in name:
        module, _, attr = name.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), attr, None)
        except ImportError:
            return None
        return found if isinstance(found, type) else None
    pending, seen = [base], set()
    while pending:
        cls = pending.pop()
        if cls.__name__ == name:
            return cls
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                pending.append(sub)
    return None


def check_inputs(config: Namespace, nothing: str) -> None:
    """Fail before anything is built when no image of ``data.images`` can be found or a network named cannot be.

    ``nothing`` leads the message when no image is found (``nothing to fit in``, ``no training images in``).
    """
    images = config.data.images
    paths, failures = resolve_images(images)
    if not paths:
        listing = "\n".join(f"  {path}: {reason}" for path, reason in failures) or "  (no input)"
        raise NoUsableImageError(f"{nothing} {images!r}: no input could be used:\n{listing}")
    model_args = config.model.get("init_args")
    check_networks(model_args.as_dict() if isinstance(model_args, Namespace) else model_args)


def check_networks(model_args: dict[str, Any] | None) -> None:
    """Raise the loader's own error when a network the model's arguments name is neither a file nor a known name."""
    for kind in ("generator", "discriminator", "encoder"):
        source = (model_args or {}).get(kind)
        if isinstance(source, str):
            resolve_file(source, kind)


def exit_with(error: UnknownOption) -> None:
    """End the command with the message and exit status 2, as argparse does for a wrong option."""
    print(error, file=sys.stderr)
    raise SystemExit(2) from error
