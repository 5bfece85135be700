"""Keep the message catalogs in step with the source: extract → merge → compile.

    python scripts/update_translations.py          # update the .po files and compile the .mo
    python scripts/update_translations.py --check  # exit 1 when a catalog is out of date

Extraction reads every ``_()``, ``N_()`` and ``ngettext()`` in ``bulkscan/``, the help texts
the command line declares (``help=``, ``description=``, ``epilog=``, group titles), and the words
argparse itself asks gettext for ("usage: ", "error: ", "positional arguments"...), which
bulkscan's catalog carries so that help and usage errors read in one language.  A new
message arrives untranslated (empty msgstr); translate it in the .po and run this again.
Needs Babel (in the test extra).
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bulkscan"
LOCALE_DIR = PACKAGE / "locale"
DOMAIN = "bulkscan"
LOCALES = ("zh_CN",)
VERSION = "0.1"
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2)}


def template() -> Catalog:
    """Every message of the source (and of argparse), as a fresh template."""
    catalog = Catalog(project="bulkscan", domain=DOMAIN, charset="utf-8")
    found = extract_from_dir(PACKAGE, method_map=[("**.py", "python")], keywords=KEYWORDS)
    for filename, lineno, message, comments, context in found:
        where = [(f"bulkscan/{Path(filename).as_posix()}", lineno)]
        catalog.add(message, locations=where, auto_comments=comments, context=context)
    for path, lineno, message in cli_help():
        catalog.add(message, locations=[(path, lineno)])
    for lineno, message, comments, context in extract_from_file(
        "python", argparse.__file__, keywords={"_": None, "ngettext": (1, 2)}
    ):
        catalog.add(message, locations=[("argparse.py", lineno)], auto_comments=comments,
                    context=context)  # fmt: skip
    return catalog


_HELP_KEYWORDS = ("help", "description", "epilog", "title")


def cli_help() -> list[tuple[str, int, str]]:
    """(file, line, text) of every help text the command line declares as a literal: the
    ``help``, ``description`` and ``epilog`` of parsers and options and the titles of option
    groups, which ``bulkscan.cli`` translates in one pass when it builds its parsers."""
    found = []
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        where = f"bulkscan/cli/{path.name}"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            values = [k.value for k in node.keywords if k.arg in _HELP_KEYWORDS]
            name = node.func.attr if isinstance(node.func, ast.Attribute) else ""
            if name == "add_argument_group":
                values += node.args[:2]
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    text = value.value
                    if text.strip() and text != "==SUPPRESS==":
                        found.append((where, node.lineno, text))
    return found


def po_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def merged(locale: str, pot: Catalog) -> Catalog:
    """The locale's catalog with the template's messages: new ones empty, gone ones dropped."""
    path = po_path(locale)
    if path.is_file():
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=locale, domain=DOMAIN)
    else:
        catalog = Catalog(locale=locale, domain=DOMAIN, project="bulkscan", charset="utf-8")
    created = catalog.creation_date  # kept, so that an unchanged catalog compiles the same
    catalog.update(pot, no_fuzzy_matching=True, update_header_comment=False)
    catalog.creation_date = created
    catalog.fuzzy = False  # the header is reviewed with the messages
    catalog.version = VERSION
    catalog.obsolete.clear()  # a message gone from the source leaves the catalog
    return catalog


def po_bytes(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    # file names without line numbers: moving a message inside its file changes nothing
    write_po(out, catalog, width=100, sort_output=False, include_previous=False,
             include_lineno=False)  # fmt: skip
    return out.getvalue()


def mo_bytes(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def _messages(po: bytes) -> list[tuple[object, object, list[str], bool]]:
    """What a catalog says (ids, strings, locations, fuzzy), apart from tool-written headers."""
    if not po:
        return []
    catalog = read_po(io.BytesIO(po), domain=DOMAIN)
    return [(m.id, m.string, [f for f, _ in m.locations], m.fuzzy) for m in catalog if m.id]


def _compiled(po: bytes) -> bytes:
    """The .mo the .po compiles to."""
    return mo_bytes(read_po(io.BytesIO(po), domain=DOMAIN)) if po else b""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    pot = template()
    stale = []
    for locale in LOCALES:
        catalog = merged(locale, pot)
        po, mo = po_path(locale), po_path(locale).with_suffix(".mo")
        new_po, new_mo = po_bytes(catalog), mo_bytes(catalog)
        old_po = po.read_bytes() if po.is_file() else b""
        old_mo = mo.read_bytes() if mo.is_file() else b""
        if _messages(new_po) != _messages(old_po) or _compiled(old_po) != old_mo:
            stale.append(str(po.relative_to(ROOT)))
            if not args.check:
                po.parent.mkdir(parents=True, exist_ok=True)
                po.write_bytes(new_po)
                mo.write_bytes(new_mo)
        missing = [m.id for m in catalog if m.id and not m.string]
        if missing:
            print(f"{locale}: {len(missing)} message(s) without a translation")
    if args.check and stale:
        print("out of date: " + ", ".join(stale) + " (run scripts/update_translations.py)")
        return 1
    for path in stale:
        print(f"wrote {path} and its .mo")
    return 0


if __name__ == "__main__":
    sys.exit(main())
