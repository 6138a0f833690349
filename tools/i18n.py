"""The translation catalog, kept in step with the code: ``python tools/i18n.py extract | update | check | fill``.

Babel does the work (``pybabel extract`` / ``update`` are the same operations); this script fixes the paths and
keywords so nobody has to remember them, and adds two checks gettext does not make.

- ``extract`` - every ``_("…")``, ``N_("…")``, ``ngettext("…", "…", n)`` in ``app.py``, ``app_pages/``, ``ui/``
  into ``locales/messages.pot``.
- ``update`` - extract, then merge the template into ``locales/zh_CN/LC_MESSAGES/messages.po``: new messages
  appear with an empty translation, messages gone from the code become obsolete (``#~``), a changed message is
  matched to its old translation and marked fuzzy (shown in English until a person checks it).
- ``check`` - fail (exit 1) on a message of the code missing from the catalog, an empty or fuzzy translation, or
  a translation whose ``{placeholders}`` differ from its source's.
- ``fill FILE.json [--po PATH]`` - set translations from a JSON object ``{msgid: msgstr}`` (for a plural message
  ``{singular: [form]}``), for a translator working outside a PO editor.
- ``part NAME PATH...`` / ``merge`` - while several people translate different pages at once, each keeps a
  part catalog ``LC_MESSAGES/NAME.po`` of the messages in their files (the app reads every ``.po`` there);
  ``merge`` folds the parts' translations into ``messages.po`` and deletes them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

REPO = Path(__file__).resolve().parent.parent
LOCALES = REPO / "locales"
TEMPLATE = LOCALES / "messages.pot"
CATALOG = LOCALES / "zh_CN" / "LC_MESSAGES" / "messages.po"
#: Where translatable text lives (sample_models marks its descriptions with its own no-op ``N_``); quantlib stays
#: language-free (its messages are English by design).
SOURCES = ("app.py", "app_pages", "ui", "sample_models")
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z_0-9]*)(?:[!:][^{}]*)?\}(?!\})")


def placeholders(text: str) -> set[str]:
    """The named ``{placeholders}`` of a message (``{{`` / ``}}`` are literal braces).

    >>> sorted(placeholders("{n} of {total:,} {{not}}"))
    ['n', 'total']
    """
    return set(PLACEHOLDER.findall(text))


def extract(paths: tuple[str, ...] = SOURCES) -> Catalog:
    """The messages of the code, as a template catalog."""
    template = Catalog(project="Quantization Explorer", charset="utf-8", fuzzy=False)
    for rel in paths:
        path = REPO / rel
        found = (
            extract_from_dir(path, method_map=[("**.py", "python")], keywords=KEYWORDS, comment_tags=("i18n:",))
            if path.is_dir()
            else _extract_file(path)
        )
        for entry in found:
            filename, lineno, message, comments, context = entry[:5]
            where = (str((path / filename).relative_to(REPO)) if path.is_dir() else rel, lineno)
            template.add(message, locations=[where], auto_comments=comments, context=context)
    return template


def _extract_file(path: Path):  # noqa: ANN202 - yields extract_from_dir's tuples
    from babel.messages.extract import extract_from_file

    for lineno, message, comments, context in extract_from_file(
        "python", str(path), keywords=KEYWORDS, comment_tags=("i18n:",)
    ):
        yield path.name, lineno, message, comments, context


def read(path: Path = CATALOG) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale="zh_CN")


def write(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, catalog, width=118, sort_by_file=False, include_previous=True)


def update(template: Catalog | None = None, path: Path = CATALOG) -> Catalog:
    template = template if template is not None else extract()
    if path == CATALOG:
        write(template, TEMPLATE)
    catalog = read(path) if path.exists() else Catalog(locale="zh_CN", project="Quantization Explorer")
    catalog.update(template, update_header_comment=False)
    write(catalog, path)
    return catalog


def part_path(name: str) -> Path:
    return CATALOG.parent / f"{name}.po"


def merge() -> Catalog:
    """Fold every part catalog's translations into ``messages.po`` (updated from the code first)."""
    catalog = update()
    for part in sorted(CATALOG.parent.glob("*.po")):
        if part == CATALOG:
            continue
        for message in read(part):
            if message.id and message.id in catalog and not message.fuzzy and (
                message.string if isinstance(message.string, str) else all(message.string)
            ):
                catalog[message.id].string = message.string
                catalog[message.id].flags.discard("fuzzy")
        part.unlink()
    write(catalog, CATALOG)
    return catalog


def problems(catalog: Catalog, template: Catalog | None = None) -> list[str]:
    """Everything that keeps ``catalog`` from translating the code completely and faithfully."""
    found = []
    template = template if template is not None else extract()
    for message in template:
        if message.id and message.id not in catalog:
            found.append(f"not in the catalog: {message.id!r}")
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, (list, tuple)) else (message.id,)
        strs = message.string if isinstance(message.string, (list, tuple)) else (message.string,)
        if message.fuzzy:
            found.append(f"fuzzy: {ids[0]!r}")
        if not all(strs):
            found.append(f"untranslated: {ids[0]!r}")
            continue
        wanted = set().union(*(placeholders(i) for i in ids))
        for s in strs:
            if placeholders(s) != wanted:
                found.append(f"placeholders {sorted(placeholders(s))} instead of {sorted(wanted)}: {ids[0]!r}")
    return found


def fill(json_path: Path, po_path: Path = CATALOG) -> int:
    """Set translations from a JSON file; returns how many messages of the catalog are still untranslated."""
    catalog = read(po_path)
    given = json.loads(json_path.read_text(encoding="utf-8"))
    for message in catalog:
        key = message.id[0] if isinstance(message.id, (list, tuple)) else message.id
        if key in given:
            value = given[key]
            message.string = tuple(value) if isinstance(message.id, (list, tuple)) else value
            message.flags.discard("fuzzy")
    write(catalog, po_path)
    return sum(1 for m in catalog if m.id and not (m.string if isinstance(m.string, str) else all(m.string)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("extract")
    sub.add_parser("update")
    sub.add_parser("check")
    f = sub.add_parser("fill")
    f.add_argument("json", type=Path)
    f.add_argument("--po", type=Path, default=CATALOG)
    p = sub.add_parser("part")
    p.add_argument("name")
    p.add_argument("paths", nargs="+")
    sub.add_parser("merge")
    c = sub.choices["check"]
    c.add_argument("--part", help="check the part catalog NAME against its files (--paths)")
    c.add_argument("--paths", nargs="*", default=None)
    args = parser.parse_args(argv)
    if args.command == "part":
        update(extract(tuple(args.paths)), part_path(args.name))
        print(f"wrote {part_path(args.name).relative_to(REPO)}")
        return 0
    if args.command == "merge":
        merge()
        return 0
    if args.command == "extract":
        write(extract(), TEMPLATE)
        return 0
    if args.command == "update":
        update()
        return 0
    if args.command == "fill":
        left = fill(args.json, args.po)
        print(f"{left} messages still untranslated in {args.po}")
        return 0
    if args.part:
        found = problems(read(part_path(args.part)), extract(tuple(args.paths or ())))
    else:
        found = problems(read())
    for line in found:
        print(line)
    print(f"{len(found)} problems" if found else "catalog complete")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
