"""The `newsqa` command line: index, delete, search, serve.

Domain errors become one line on stderr (`newsqa: error: ...`) and exit code 2;
nothing prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import fields
from pathlib import Path

from indexer.errors import NewsqaError

DEFAULT_INDEX = "index"


def _add_index_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", default=DEFAULT_INDEX, type=Path, help="index directory (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsqa", description="Semantic search and question answering over news archives.")
    sub = parser.add_subparsers(dest="command", required=True)

    index = sub.add_parser("index", help="index articles (incremental: only new or changed articles are embedded)")
    index.add_argument("sources", nargs="+", help="files or folders: .txt/.md news dumps, .jsonl, .html")
    _add_index_option(index)
    index.add_argument("--max-tokens", type=int, default=200, help="passage size limit in tokens (default: %(default)s)")
    index.add_argument("--overlap", type=int, default=1, help="sentences shared by consecutive passages (default: %(default)s)")
    index.add_argument("--rebuild", action="store_true", help="build from scratch instead of updating the index")
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    index.add_argument("--json", action="store_true", help="print the summary as JSON")

    delete = sub.add_parser("delete", help="remove articles by id")
    delete.add_argument("ids", nargs="+", help="article ids (citation.article_id)")
    _add_index_option(delete)

    search = sub.add_parser("search", help="search passages and print them with citations")
    search.add_argument("query")
    _add_index_option(search)
    search.add_argument("-k", type=int, default=5, help="number of passages (default: %(default)s)")
    search.add_argument("--mode", default="hybrid", help="hybrid, dense or lexical (default: %(default)s)")
    search.add_argument("--date-from")
    search.add_argument("--date-to")
    search.add_argument("--source")
    search.add_argument("--json", action="store_true", help="print the API's JSON response")

    from service.app import ServiceSettings

    serve = sub.add_parser("serve", help="serve the HTTP API and search page")
    for f in fields(ServiceSettings):
        flag = "--index" if f.name == "index_dir" else "--" + f.name.replace("_", "-")
        serve.add_argument(flag, dest=f.name, type=type(f.default), default=f.default,
                           help=f"{f.metadata['help']} (default: %(default)s)")
    serve.add_argument("--log-level", default="info")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except NewsqaError as exc:
        print(f"newsqa: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("newsqa: interrupted", file=sys.stderr)
        return 130


def _cmd_index(args) -> int:
    from indexer.build import build_index
    from indexer.chunk import ChunkSettings
    from indexer.embed import Embedder

    settings = ChunkSettings(max_tokens=args.max_tokens, overlap=args.overlap).validate()
    summary = build_index(args.sources, args.index, embedder=Embedder(), settings=settings, rebuild=args.rebuild,
                          progress=False if args.no_progress else None)
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        for error in summary.errors:
            print(f"{error.where()}: {error.message}", file=sys.stderr)
        state = f"new version {summary.version}" if summary.version else "index is up to date"
        print(
            f"{state}: {summary.added} added, {summary.updated} updated, {summary.unchanged} unchanged, "
            f"{summary.duplicates} duplicate articles and {summary.duplicate_paragraphs} duplicate paragraphs dropped, "
            f"{summary.boilerplate_lines} boilerplate lines removed, {len(summary.errors)} errors; "
            f"{summary.chunks} passages embedded in {summary.seconds:.1f} s "
            f"({summary.passages_per_second:.1f} passages/s); "
            f"index holds {summary.total_articles} articles, {summary.total_chunks} passages"
        )
    return 1 if summary.errors and not (summary.added or summary.updated or summary.unchanged) else 0


def _cmd_delete(args) -> int:
    from indexer.build import delete_articles

    removed = delete_articles(args.index, args.ids)
    missing = [i for i in args.ids if i not in removed]
    print(f"deleted {len(removed)} article(s)" + (f"; not found: {', '.join(missing)}" if missing else ""))
    return 0 if not missing else 1


def _cmd_search(args) -> int:
    from indexer.embed import Embedder
    from indexer.search import Searcher, make_filters
    from indexer.store import open_index
    from service.schemas import search_out

    embedder = Embedder()
    searcher = Searcher(open_index(args.index, model=embedder.name), embedder)
    result = searcher.search(args.query, k=args.k, mode=args.mode,
                             filters=make_filters(args.date_from, args.date_to, args.source))
    if args.json:
        import msgspec

        print(msgspec.json.encode(search_out(result)).decode())
        return 0
    if not result.hits:
        print("no results")
    for hit in result.hits:
        c = hit.citation
        where = " · ".join(filter(None, [c.date, c.source, c.section]))
        print(f"{hit.rank}. {c.title}  [{where}]  score {hit.score:.3f}")
        print(f"   {hit.text}")
        print(f"   cite: article {c.article_id}, paragraph {c.paragraph + 1}, chars {c.start}-{c.end}\n")
    return 0


def _cmd_serve(args) -> int:
    import uvicorn

    from service.app import ServiceSettings, create_app

    settings = ServiceSettings(index_dir=args.index_dir, host=args.host, port=args.port)
    from indexer.store import current_version

    if current_version(Path(settings.index_dir)) is None:
        raise NewsqaError(f"no index at {settings.index_dir}: build one with `newsqa index data/ --index {settings.index_dir}`")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level)
    return 0


COMMANDS = {"index": _cmd_index, "delete": _cmd_delete, "search": _cmd_search, "serve": _cmd_serve}


if __name__ == "__main__":
    sys.exit(main())
