"""`vllm serve`'s command line read the way a given vllm reads it, from the table of its flags.

vllm's FlexibleArgumentParser rewrites the arguments before argparse sees them (underscores to
dashes, -O3, dotted JSON keys gathered into one JSON argument at the end); argparse then
resolves unique prefixes and short aliases, and refuses ambiguous ones. Validation reads each
serve.extraArgs item with the functions here, and the simulator parses its whole command line
with `add_arguments` + `rewrite`, so both accept and refuse what vllm does.

Standard library only: the simulator image has no other packages. Each table,
vllm_flags_<version>.json, is generated from that vllm's own parser by scripts/gen_vllm_flags.py;
which one a stack uses follows from its image (core/vllm_releases.py).
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

# The vllm of the default image (image.tag v0.18.0): the table for readers that see no stack
# config (the policy pack judges containers, not stacks) and for a simulator told no version.
DEFAULT_VERSION = "0.18.0"
# argparse's test for an argument that is a negative number, not an option.
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT])")


@dataclass(frozen=True)
class Flag:
    name: str
    aliases: tuple[str, ...]
    kind: str
    negatable: bool
    choices: tuple[str, ...] = ()
    nargs: str | None = None
    nullable: bool = False
    repeatable: bool = False

    @property
    def negation(self) -> str | None:
        return f"--no-{self.name[2:]}" if self.negatable else None

    @property
    def takes_value(self) -> bool:
        return self.kind != "switch"

    @property
    def dest(self) -> str:
        return self.name[2:].replace("-", "_")


@dataclass(frozen=True)
class Table:
    version: str
    flags: tuple[Flag, ...]

    @cached_property
    def options(self) -> dict[str, Flag]:
        """Every option string argparse knows, the --no- forms included."""
        return {option: flag for flag in self.flags for option in option_strings(flag)}

    def flag(self, name: str) -> Flag:
        return next(f for f in self.flags if f.name == name)


def option_strings(flag: Flag) -> tuple[str, ...]:
    return (flag.name, *flag.aliases, *((flag.negation,) if flag.negation else ()))


def table_file(version: str) -> Path:
    return Path(__file__).with_name(f"vllm_flags_{version.replace('.', '_')}.json")


def versions() -> tuple[str, ...]:
    """Every vllm with a table here."""
    found = (p.stem.removeprefix("vllm_flags_").split("_") for p in Path(__file__).parent.glob("vllm_flags_*.json"))
    return tuple(".".join(map(str, v)) for v in sorted(tuple(map(int, parts)) for parts in found))


@cache
def load_table(version: str = DEFAULT_VERSION) -> Table:
    path = table_file(version)
    if not path.is_file():
        raise ValueError(f"no table of vllm {version}'s flags; the tables are of vllm {', '.join(versions())}")
    document = json.loads(path.read_text())
    flags = []
    for entry in document["flags"]:
        entry = {**entry, "aliases": tuple(entry["aliases"]), "choices": tuple(entry.get("choices", ()))}
        flags.append(Flag(**entry))
    return Table(document["vllm"], tuple(flags))


class ArgError(ValueError):
    """What vllm's parser would refuse, worded like argparse."""


@dataclass(frozen=True)
class Option:
    """One option argument resolved to its flag."""

    flag: Flag
    # The option string it resolved to, e.g. --max-num-seqs for --max-num, --no-x for --no_x.
    option: str
    explicit: str | None

    @property
    def negated(self) -> bool:
        return self.option == self.flag.negation


def normalise(arg: str) -> str:
    """An argument as FlexibleArgumentParser hands it on: `_` as `-` in a --long name (up to a
    dot), -O<level> as --optimization-level=<level>."""
    if arg.startswith("--"):
        key, sep, value = arg.partition("=")
        head, dot, tail = key[2:].partition(".")
        return f"--{head.replace('_', '-')}{dot}{tail}{sep}{value}"
    if arg.startswith("-O") and arg != "-O":
        return f"--optimization-level={arg[3:] if arg[2] == '=' else arg[2:]}"
    return arg


def normalised(args: list[str]) -> list[str]:
    """Every argument normalised; a lone -O before a level 0-3 is --optimization-level."""
    out = [normalise(a) for a in args]
    for i, arg in enumerate(args[:-1]):
        if arg == "-O" and args[i + 1] in ("0", "1", "2", "3"):
            out[i] = "--optimization-level"
    return out


def dotted_key(arg: str) -> tuple[str, str, str | None] | None:
    """(option, dotted JSON path, value if given with =) of a `--json-arg.key value` argument."""
    if not arg.startswith("-") or "." not in arg.split("=", 1)[0]:
        return None
    key, sep, value = arg.partition("=")
    option, _, path = key.partition(".")
    return option, path, value if sep else None


def resolve(arg: str, table: Table) -> Option | None:
    """The flag an option argument names, as argparse (Python 3.11) resolves it; None when
    argparse takes the argument for a value. Raises ArgError for unknown or ambiguous options."""
    options = table.options
    if not arg or arg[0] != "-":
        return None
    if arg in options:
        return Option(options[arg], arg, None)
    if len(arg) == 1:
        return None
    name, sep, value = arg.partition("=")
    if sep and name in options:
        return Option(options[name], name, value)
    matches = _prefix_matches(arg, options)
    if len(matches) > 1:
        raise ArgError(f"ambiguous option: {arg} could match {', '.join(m.option for m in matches)}")
    if matches:
        return matches[0]
    if _NEGATIVE_NUMBER.match(arg) or " " in arg:
        return None
    raise ArgError(f"unrecognized arguments: {arg}")


def _prefix_matches(arg: str, options: dict[str, Flag]) -> list[Option]:
    if arg.startswith("--"):
        prefix, sep, value = arg.partition("=")
        return [Option(flag, o, value if sep else None) for o, flag in options.items() if o.startswith(prefix)]
    # A single-dash option: a prefix of a short alias, or a two-character alias with its value attached.
    return [
        Option(flag, o, arg[2:] if o == arg[:2] else None)
        for o, flag in options.items()
        if o == arg[:2] or o.startswith(arg)
    ]


@dataclass(frozen=True)
class Given:
    """One option of a command line with the arguments it takes, or why vllm refuses it."""

    index: int
    text: str
    option: Option | None = None
    values: tuple[str, ...] = ()
    # The JSON key path of a `--json-arg.key value` option, whose value replaces the whole JSON argument.
    dotted: str | None = None
    error: str | None = None


def read(args: list[str], table: Table) -> list[Given]:
    """Each option in `args` (no subcommand, no model) as vllm's parser takes it, one entry per
    option with the index of the argument that names it; every refused argument is an entry."""
    names = normalised(args)
    given, i = [], 0
    while i < len(names):
        arg, start = names[i], i
        i += 1
        key = dotted_key(arg)
        try:
            option = resolve(key[0] if key else arg, table)
        except ArgError as e:
            given.append(Given(start, args[start], error=str(e)))
            # Whatever values follow belong to the refused option, not to the command line.
            while i < len(names) and _is_value(names[i], table):
                i += 1
            continue
        if option is None:
            given.append(Given(start, args[start], error=f"unrecognized arguments: {args[start]}"))
        elif key:
            value = key[2]
            if value is None and i < len(names):
                value, i = names[i], i + 1
            given.append(Given(start, args[start], option, (value or "",), dotted=key[1]))
        else:
            values, error = _values(option, names[i:], table)
            i += len(values) if option.explicit is None else 0
            given.append(Given(start, args[start], option, values, error=error))
    return given


def _values(option: Option, rest: list[str], table: Table) -> tuple[tuple[str, ...], str | None]:
    """The values an option takes (its =value, or the arguments after it) and what is wrong with them."""
    flag = option.flag
    if option.explicit is not None:
        if not flag.takes_value:
            return (option.explicit,), f"argument {option.option}: ignored explicit argument '{option.explicit}'"
        values = [option.explicit]
    else:
        values = []
        limit = min(0 if not flag.takes_value else 1 if flag.nargs in (None, "?") else len(rest), len(rest))
        while len(values) < limit and _is_value(rest[len(values)], table):
            values.append(rest[len(values)])
        if flag.takes_value and not values and flag.nargs in (None, "+"):
            expected = "one argument" if flag.nargs is None else "at least one argument"
            return (), f"argument {option.option}: expected {expected}"
    for value in values:
        try:
            convert(flag, value)
        except ArgError as e:
            return tuple(values), str(e)
    return tuple(values), None


def _is_value(arg: str, table: Table) -> bool:
    try:
        return resolve(arg, table) is None
    except ArgError:
        return False


def convert(flag: Flag, text: str):
    """A value as vllm's type for the flag converts it; raises ArgError as argparse would report it."""
    if flag.nullable and text in ("", "None"):
        return None
    try:
        value = _CONVERTERS[flag.kind](text)
    except (ValueError, TypeError) as e:
        raise ArgError(f"argument {flag.name}: invalid {flag.kind} value: '{text}'") from e
    if flag.choices and str(value) not in flag.choices:
        choices = ", ".join(repr(c) for c in flag.choices)
        raise ArgError(f"argument {flag.name}: invalid choice: '{text}' (choose from {choices})")
    return value


def _size(text: str) -> int:
    """vllm's human-readable integers: 16k is 16000, 16K is 16384; decimals only with k/m/g/t."""
    text = text.strip()
    match = _SIZE.fullmatch(text)
    if not match:
        return int(text)
    number, suffix = match.groups()
    if suffix.islower():
        return int(float(number) * 1000 ** ("kmgt".index(suffix) + 1))
    return int(number) * 1024 ** ("KMGT".index(suffix) + 1)


def _size_or_auto(text: str) -> int:
    return -1 if text.strip() == "-1" or text.strip().lower() == "auto" else _size(text)


def _json_object(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _json_or_str(text: str):
    return json.loads(text) if re.match(r"(?s)^\s*{.*}\s*$", text) else text


_CONVERTERS = {
    "int": int,
    "float": float,
    "str": str,
    "choice": str,
    "size": _size,
    "size-or-auto": _size_or_auto,
    "json": json.loads,
    "json-object": _json_object,
    "json-or-str": _json_or_str,
}


def rewrite(args: list[str]) -> list[str]:
    """FlexibleArgumentParser's rewriting of a command line (after the subcommand and model)."""
    out, dotted, skip = [], {}, False
    args = normalised(args)
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        key = dotted_key(arg)
        if key is None:
            out.append(arg)
            continue
        option, path, value = key
        if value is None and i + 1 < len(args):
            value, skip = args[i + 1], True
        if path.endswith("+"):
            path, value = path[:-1], json.dumps((value or "").split(","))
        try:
            parsed = json.loads(value or "")
        except ValueError:
            parsed = value
        _merge(dotted.setdefault(option, {}), path.split("."), parsed)
    for option, value in dotted.items():
        out += [option, json.dumps(value)]
    return out


def _merge(target: dict, keys: list[str], value) -> None:
    for key in keys[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    last = keys[-1]
    if isinstance(value, list) and isinstance(target.get(last), list):
        target[last] += value
    else:
        target[last] = value


def add_arguments(parser: argparse.ArgumentParser, table: Table) -> None:
    """The table's flags on an argparse parser (made with add_help=False: --help is in the table)."""
    for flag in table.flags:
        kwargs: dict = {"dest": flag.dest, "default": None}
        if flag.name == "--help":
            kwargs = {"action": "help"}
        elif not flag.takes_value:
            kwargs["action"] = argparse.BooleanOptionalAction if flag.negatable else "store_true"
            kwargs["default"] = None if flag.negatable else False
        else:
            kwargs["type"] = _argparse_type(flag)
            if flag.nargs:
                kwargs["nargs"] = flag.nargs
            if flag.repeatable:
                kwargs["action"] = "append"
        parser.add_argument(flag.name, *flag.aliases, **kwargs)


def _argparse_type(flag: Flag):
    def parse(text: str):
        try:
            return convert(flag, text)
        except ArgError as e:
            raise argparse.ArgumentTypeError(str(e).split(": ", 1)[1]) from e

    parse.__name__ = flag.kind
    return parse
