"""`sos-voice catalog …`: look at the SOS catalog and install a newer copy of it.

The catalog shipped in the ``zyra`` package is a snapshot; exhibits add datasets. ``refresh``
takes a newer catalog JSON (same format: a list of records with url/title/description/…) from a
URL or a file, checks it, and writes it where ``catalog.path`` can point, atomically, so a
running kiosk never reads half a file. Nothing is fetched unless an operator asks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from catalog.datasets import Catalog, CatalogError, entry_from_record


def _read_source(source: str, timeout: float) -> bytes:
    if source.startswith(("http://", "https://")):
        request = urllib.request.Request(source, headers={"User-Agent": "sos-voice"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    return Path(source).expanduser().read_bytes()


def refresh(source: str, out: Path, *, min_entries: int = 100, timeout: float = 30.0) -> int:
    """Validate the catalog at ``source`` and write it to ``out``. Returns the dataset count."""
    try:
        records = json.loads(_read_source(source, timeout))
    except (OSError, ValueError) as exc:
        raise CatalogError(f"cannot read a catalog from {source}: {exc}") from exc
    if not isinstance(records, list):
        raise CatalogError(f"{source}: expected a JSON list of datasets")
    usable = [r for r in records if isinstance(r, dict) and entry_from_record(r)]
    if len(usable) < min_entries:
        raise CatalogError(
            f"{source}: only {len(usable)} datasets with catalog URLs (want >= {min_entries}); "
            "not replacing the catalog"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(usable, fh, ensure_ascii=False, indent=1)
    os.replace(tmp, out)
    return len(usable)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sos-voice catalog", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("refresh", help="install a newer catalog JSON from a URL or file")
    r.add_argument("--source", required=True, help="URL or path of a catalog JSON")
    r.add_argument("--out", type=Path, required=True, help="where to write it (catalog.path)")
    r.add_argument("--min-entries", type=int, default=100)
    s = sub.add_parser("show", help="show the dataset a URL, slug or title names")
    s.add_argument("ref")
    s.add_argument("--catalog", type=Path, default=None)
    f = sub.add_parser("search", help="the datasets a question would be grounded in")
    f.add_argument("question")
    f.add_argument("-k", type=int, default=5)
    f.add_argument("--catalog", type=Path, default=None)
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        if args.command == "refresh":
            count = refresh(args.source, args.out, min_entries=args.min_entries)
            print(f'wrote {count} datasets to {args.out}; set catalog.path = "{args.out}"')
            return 0
        catalog = Catalog.load(args.catalog)
        if args.command == "show":
            entry = catalog.resolve(args.ref)
            print(f"{entry.title}\n{entry.url}\ncategories: {', '.join(entry.categories)}")
            print(f"keywords: {', '.join(entry.keywords)}\n\n{entry.summary(800)}")
            for rel in entry.related:
                print(f"related: {rel.title} <{rel.url}>")
            return 0
        from catalog.retrieval import Retriever

        retriever = Retriever.build(catalog)
        for hit in retriever.search(args.question, k=args.k):
            print(f"{hit.score:7.3f}  {hit.entry.title}  <{hit.entry.url}>")
        return 0
    except CatalogError as exc:
        print(f"sos-voice catalog: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
