"""Regenerate core/vllm_flags_<version>.json from vllm's own `vllm serve` argument parser.

    pip download vllm==0.18.0 --no-deps --no-binary :all: -d build/vllm-sdist
    python scripts/gen_vllm_flags.py build/vllm-sdist/vllm-0.18.0.tar.gz

Run it for every vllm in core/vllm_releases.py (0.13.0, 0.18.0 and 0.23.0 so far).

(pip may stop after the download, while preparing the sdist's build dependencies; with
`--no-build-isolation --no-clean` and TMPDIR set it leaves the unpacked tree under TMPDIR,
which this script takes as well.)

The parser is vllm's: its arg_utils, config dataclasses and FlexibleArgumentParser run from
the source tree. Only what they import from outside vllm and this environment (torch,
transformers, ...) is stubbed; the flags, their aliases and their value types come from vllm's
dataclass fields, so a stub can at worst turn a value kind into "str".
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import sys
import tarfile
import tempfile
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class _Stub(type):
    """A class standing in for anything a missing package exports: usable as a value, a type,
    a base class, a decorator or a container."""

    def __getattr__(cls, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _stub(f"{cls.__qualname__}.{name}")

    def __call__(cls, *args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]  # used as a decorator
        return _stub(f"{cls.__qualname__}()")

    def __getitem__(cls, item):
        return cls

    def __or__(cls, other):
        return cls

    def __ror__(cls, other):
        return cls

    def __add__(cls, other):
        return other if isinstance(other, str) else cls

    def _same(cls, *args):
        return cls

    __radd__ = __add__
    __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __floordiv__ = _same
    __rfloordiv__ = __pow__ = __rpow__ = __mod__ = __rmod__ = __neg__ = __and__ = __rand__ = _same
    __lt__ = __le__ = __gt__ = __ge__ = _same

    def __iter__(cls):
        return iter(())

    def __len__(cls):
        return 0

    def __bool__(cls):
        return False


class _StubBase:
    """The base of every stub, so classes deriving from one take keywords as msgspec.Struct does."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__()

    def __init__(self, *args, **kwargs):
        pass

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        from pydantic_core import core_schema

        return core_schema.any_schema()


def _stub(name: str) -> type:
    return _Stub(name, (_StubBase,), {"__module__": "stub"})


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        value = _stub(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


# What serve.py imports to run a server, not to build its parser. The OpenAI API's request
# models are among them: vllm 0.13's parser module imports them on its way to LoRAModulePath, and
# with torch and msgspec stubbed pydantic cannot build them (torch.iinfo bounds, msgspec fields).
_SERVING_MODULES = {
    "vllm.entrypoints.openai.api_server",
    "vllm.entrypoints.openai.protocol",
    "vllm.usage.usage_lib",
    "vllm.v1.engine.utils",
    "vllm.v1.executor",
    "vllm.v1.executor.multiproc_executor",
    "vllm.v1.metrics.prometheus",
    "vllm.v1.utils",
}


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports vllm from the source tree; anything else that is not installed becomes a stub."""

    def find_spec(self, fullname, path, target=None):
        if fullname in _SERVING_MODULES:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        if fullname.split(".")[0] in ("vllm", *sys.stdlib_module_names):
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        module.__file__ = f"<stub {spec.name}>"
        return module

    def exec_module(self, module):
        pass


def _source_tree(path: Path, workdir: Path) -> Path:
    if path.is_dir():
        return path
    with tarfile.open(path) as tar:
        tar.extractall(workdir, filter="data")
    return next(p.parent for p in workdir.glob("*/vllm/__init__.py")).parent


def _version(tree: Path) -> str:
    for line in (tree / "PKG-INFO").read_text().splitlines():
        if line.startswith("Version: "):
            return line.split(": ", 1)[1]
    raise SystemExit(f"{tree}/PKG-INFO names no version")


def build_serve_parser(tree: Path) -> argparse.ArgumentParser:
    sys.path.insert(0, str(tree))
    sys.meta_path.insert(0, _StubFinder())
    sys.modules["regex"] = __import__("re")
    installed_version = importlib.metadata.version

    def version(name: str) -> str:
        try:
            return installed_version(name)
        except importlib.metadata.PackageNotFoundError:
            return "0"

    importlib.metadata.version = version
    # The cli package's __init__ loads every subcommand (benchmarks pull in the model code);
    # the serve subcommand alone is what builds `vllm serve`'s parser.
    cli_package = types.ModuleType("vllm.entrypoints.cli")
    cli_package.__path__ = [str(tree / "vllm" / "entrypoints" / "cli")]
    sys.modules[cli_package.__name__] = cli_package
    # vllm-ascend runs vllm as an out-of-tree NPU platform; the platform sets only defaults.
    import vllm.platforms
    from vllm.platforms.interface import Platform, PlatformEnum

    class NpuPlatform(Platform):
        _enum = PlatformEnum.OOT
        device_name = "npu"
        device_type = "npu"

    vllm.platforms._current_platform = NpuPlatform()
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    top = FlexibleArgumentParser(prog="vllm")
    return ServeSubcommand().subparser_init(top.add_subparsers())


def _unwrapped(convert) -> tuple[object, bool]:
    """The value type inside vllm's optional_type/parse_type wrappers, and whether 'None' is allowed."""
    nullable = False
    while getattr(convert, "__closure__", None) and convert.__qualname__.startswith(("optional_type.", "parse_type.")):
        nullable = nullable or convert.__qualname__.startswith("optional_type.")
        convert = convert.__closure__[0].cell_contents
    return convert, nullable


def _value_kind(action: argparse.Action, kinds: dict) -> dict:
    if action.nargs == 0:
        return {"kind": "switch"}
    convert, nullable = _unwrapped(action.type or str)
    name = getattr(convert, "__qualname__", "")
    if action.choices:
        entry = {"kind": "choice", "choices": [str(c) for c in action.choices]}
    elif convert in kinds:
        entry = {"kind": kinds[convert]}
    elif name.endswith("parse_dataclass"):
        entry = {"kind": "json-object"}  # validated as one of vllm's config dataclasses
    else:
        raise SystemExit(f"{action.option_strings[0]}: no value kind for its type {convert!r}")
    if nullable:
        entry["nullable"] = True
    if action.nargs is not None:
        entry["nargs"] = action.nargs
    if isinstance(action, argparse._AppendAction):
        entry["repeatable"] = True
    return entry


_VLLM_KINDS = {
    "human_readable_int": "size",
    "human_readable_int_or_auto": "size-or-auto",
    "union_dict_and_str": "json-or-str",
}


def flag_table(parser: argparse.ArgumentParser) -> list[dict]:
    from vllm.engine import arg_utils

    kinds = {int: "int", float: "float", str: "str", json.loads: "json"}
    # vllm's own value parsers; an older vllm lacks some (0.13 has no human_readable_int_or_auto).
    for parser_name, kind in _VLLM_KINDS.items():
        if hasattr(arg_utils, parser_name):
            kinds[getattr(arg_utils, parser_name)] = kind
    table = []
    for action in parser._actions:
        if not action.option_strings:
            continue
        negations = [o for o in action.option_strings if o.startswith("--no-")]
        names = [o for o in action.option_strings if o not in negations]
        long = next(o for o in names if o.startswith("--"))
        table.append(
            {
                "name": long,
                "aliases": [o for o in names if o != long],
                **_value_kind(action, kinds),
                "negatable": bool(negations),
            }
        )
    return sorted(table, key=lambda e: e["name"])


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("source", type=Path, help="vllm sdist (.tar.gz) or its unpacked tree")
    cli.add_argument("--out-dir", type=Path, default=REPO / "core")
    args = cli.parse_args()
    with tempfile.TemporaryDirectory() as work:
        tree = _source_tree(args.source, Path(work))
        version = _version(tree)
        table = flag_table(build_serve_parser(tree))
    out = args.out_dir / f"vllm_flags_{version.replace('.', '_')}.json"
    document = {
        "vllm": version,
        "parser": "vllm serve (vllm.entrypoints.cli.serve.ServeSubcommand)",
        "regenerate": f"python scripts/gen_vllm_flags.py vllm-{version}.tar.gz "
        f"(from: pip download vllm=={version} --no-deps --no-binary :all:; or the unpacked tree that "
        "pip leaves under TMPDIR with --no-build-isolation --no-clean when it cannot build the sdist)",
        "flags": table,
    }
    # One flag per line: a version bump then reads as a diff of flags.
    body = json.dumps({**document, "flags": []}, indent=1)[: -len("[]\n}")]
    rows = ",\n".join("  " + json.dumps(entry) for entry in table)
    out.write_text(f"{body}[\n{rows}\n ]\n}}\n")
    print(f"{out}: {len(table)} flags of vllm {version}")


if __name__ == "__main__":
    main()
