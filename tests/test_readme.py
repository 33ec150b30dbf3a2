"""The README and docs/ name what the code names: a newcomer reading them finds the same checks and
files, every link leads somewhere, and the README stays a front page that reaches every page."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# Every Markdown page a reader can land on; the folder READMEs are linked from the front page.
# Every module of checks/ but group_view (a check after readiness, with the verification): those
# that name a check (CHECK or *_CHECK) are in the table of checks before any container.
CHECK_MODULES = tuple(
    importlib.import_module(f"checks.{path.stem}")
    for path in sorted((ROOT / "checks").glob("[a-z]*.py"))
    if path.stem != "group_view"
)
PAGES = (README, *sorted(DOCS.glob("*.md")), ROOT / "policy" / "README.md", ROOT / "sim" / "README.md")
# The README is a front page: past this it has started to hold what belongs in docs/ again.
README_MAX_LINES = 150


def _table_after(path: Path, heading: str) -> list[list[str]]:
    """The rows (cells split on `|`, header and rule dropped) of the first table after `heading`."""
    text = path.read_text()
    rest = text[text.index(heading) :]
    lines = rest[rest.index("\n|") + 1 :].splitlines()
    rows = lines[: next((i for i, line in enumerate(lines) if not line.startswith("|")), len(lines))]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_the_checks_table_lists_exactly_the_checks_the_code_names():
    modules = CHECK_MODULES
    names = {value for m in modules for key, value in vars(m).items() if key == "CHECK" or key.endswith("_CHECK")}
    rows = _table_after(DOCS / "checks.md", "## Before any container")
    table = {re.match(r"`([^`]+)`", row[0]).group(1) for row in rows}
    assert table == names
    assert len(names) == 15


# Folders whose every module the layout table names one by one; `policy/` and `sim/` have READMEs
# of their own, and the README's documentation table names every page of `docs/`.
ONE_BY_ONE = ("core", "checks", "components", "ops", "supervision", "scripts", "benchmarks")


def _layout_paths() -> set[str]:
    paths = set()
    for row in _table_after(DOCS / "architecture.md", "## Layout"):
        folder = ""
        for entry in re.findall(r"`([^`]+)`", row[0]):
            if "/" in entry.rstrip("/"):
                folder = entry.rstrip("/").rsplit("/", 1)[0] + "/"
                paths.add(entry)
            else:
                paths.add(folder + entry)
    # A folder is named by naming what is in it.
    return paths | {path.split("/")[0] + "/" for path in paths if "/" in path.rstrip("/")}


def _product_files() -> set[str]:
    top = {
        p.name + ("/" if p.is_dir() else "")
        for p in ROOT.iterdir()
        if not p.name.startswith(".") and p.name not in ("README.md", "build", "__pycache__")
    }
    modules = {
        str(p.relative_to(ROOT))
        for folder in ONE_BY_ONE
        for p in (ROOT / folder).iterdir()
        if p.is_file() and p.name != "__init__.py"
    }
    tests = {f"tests/{p.name}/" for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name != "__pycache__"}
    return top | modules | tests | {".ci/run"}


def test_the_layout_table_names_every_product_folder_and_module_and_nothing_else():
    listed = _layout_paths()
    assert {"docs/", "ops/render.py", "ops/diagnose.py"} <= _product_files()
    assert _product_files() - listed == set()  # missing from the table
    assert {p for p in listed if not (ROOT / p).exists()} == set()  # in the table, not in the tree


_FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(path: Path) -> str:
    """The page without its code, where brackets and parentheses are shell or Python, not links."""
    return _INLINE_CODE.sub("", _FENCED.sub("", path.read_text()))


def _links(path: Path) -> list[str]:
    return _LINK.findall(_prose(path))


def _anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lowercase, punctuation dropped, spaces to
    dashes, and -1, -2, ... on repeats."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in _FENCED.sub("", path.read_text()).splitlines():
        if not re.match(r"#{1,6} ", line):
            continue
        slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _broken(page: Path, link: str) -> str | None:
    """Why a relative link from `page` leads nowhere, or None when it leads to what it names."""
    target, _, anchor = link.partition("#")
    path = (page.parent / target).resolve() if target else page
    if not path.exists():
        return f"{page.relative_to(ROOT)}: {link} (no such file)"
    if anchor and (path.suffix != ".md" or anchor not in _anchors(path)):
        return f"{page.relative_to(ROOT)}: {link} (no such heading)"
    return None


def test_every_relative_link_leads_to_a_file_and_heading_that_exist():
    relative = [(page, link) for page in PAGES for link in _links(page) if not re.match(r"[a-z]+:", link)]
    assert len(relative) >= len(list(DOCS.glob("*.md")))  # the pages do link to one another
    assert [b for page, link in relative if (b := _broken(page, link))] == []


def test_a_link_to_a_missing_file_or_heading_is_reported():
    # The link check itself must not pass by finding nothing.
    assert _broken(README, "docs/configuration.md") is None
    assert _broken(README, "docs/no-such-page.md") is not None
    assert _broken(DOCS / "checks.md", "configuration.md#secrets") is None
    assert _broken(DOCS / "checks.md", "configuration.md#no-such-heading") is not None
    assert "what-pulumi-up-checks-and-when" in _anchors(DOCS / "checks.md")


def test_the_readme_stays_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_the_readmes_documentation_table_links_every_page_of_docs():
    pages = {p.relative_to(ROOT).as_posix() for p in DOCS.glob("*.md")}
    rows = _table_after(README, "## Documentation")
    linked = {target.partition("#")[0] for row in rows for target in _LINK.findall(row[0])}
    assert len(pages) >= 8
    assert pages - linked == set()  # a page no reader of the README can find
