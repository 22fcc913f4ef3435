"""The `newsqa` command line: index, delete, merge, search, ask, list, show, stats, eval, serve, mcp.

Exit codes, the same for every command:

- 0: done;
- 1: nothing found (`search` with no hits, `ask` with no answer, `show` or
  `delete` of an unknown id), like grep;
- 2: an error (bad option or input, missing index): one line on stderr,
  `newsqa: error: ...`, or with `--json` the API's error shape
  `{"error": {"code", "message"}}` on stdout;
- 3: `index` finished but some records or files failed (each is reported);
- 75: `--no-wait` and another writer holds the index;
- 130: interrupted.

Nothing prints a traceback for bad input. Logging is configured once, in
`main`: warnings and errors by default, library chatter with `--verbose`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from indexer.errors import IndexBusy, NewsqaError, NotFound

EXIT_OK = 0
EXIT_NOTHING_FOUND = 1
EXIT_ERROR = 2
EXIT_PARTIAL = 3
EXIT_BUSY = 75  # sysexits EX_TEMPFAIL: try again later
EXIT_INTERRUPTED = 130
_LOG_HANDLER = "newsqa-cli"


class _CommandParser(argparse.ArgumentParser):
    """The parser of each command: every command takes --verbose and --quiet after its name."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        loud = self.add_mutually_exclusive_group()
        loud.add_argument("-v", "--verbose", action="store_true",
                          help="also show informational and debug logs of newsqa and its libraries")
        loud.add_argument("-q", "--quiet", action="store_true", help="errors only: no warnings, no progress bar")


def _add_setting(parser: argparse.ArgumentParser, setting, dest: str | None = None) -> None:
    """The flag of a declared setting (`indexer.settings.Setting`): its type, default, help and env var.

    A flag left out takes the setting's environment variable, else its default; a bool setting that
    defaults to on is turned off with `--no-NAME`; a tuple setting is a flag given once per value.
    """
    dest = dest or setting.name
    if isinstance(setting.default, bool):
        parser.add_argument("--no-" + setting.option.removeprefix("--"), dest=dest, action="store_false",
                            help=f"do not {setting.help}")
        return
    notes = [f"env {setting.env}"] if setting.env else []
    if setting.repeated:
        parser.add_argument(setting.option, dest=dest, action="append", type=str, default=None,
                            help=setting.help + (f" ({'; '.join(notes)})" if notes else ""))
        return
    if not setting.secret:
        notes.append("default: %(default)s")
    # argparse converts a string default with `type` as if it were given, so a bad env value is a
    # usage error (exit 2) naming the flag, like a bad flag value.
    parser.add_argument(setting.option, dest=dest, type=type(setting.default),
                        default=setting.from_env() or setting.default,
                        help=setting.help + (f" ({'; '.join(notes)})" if notes else ""))


def _add_settings(parser: argparse.ArgumentParser, group: type) -> None:
    """The flags of every setting the dataclass `group` declares; each lands on its field's name."""
    from indexer.settings import declared_fields

    for name, setting in declared_fields(group):
        _add_setting(parser, setting, dest=name)


def _add_index_option(parser: argparse.ArgumentParser, dest: str = "index") -> None:
    from indexer.settings import INDEX

    _add_setting(parser, INDEX, dest)


def _add_store_option(parser: argparse.ArgumentParser) -> None:
    from indexer.settings import STORE

    _add_setting(parser, STORE)


def build_parser() -> argparse.ArgumentParser:
    from indexer.ingest.chunk import ChunkSettings
    from indexer.query.answer import DEFAULT_PASSAGES
    from indexer.settings import CACHE_DIR
    from indexer.query.search import DEFAULT_K, DEFAULT_MODE
    from indexer.store.embedded import package_version

    parser = argparse.ArgumentParser(prog="newsqa", description="Semantic search and question answering over news archives.",
                                     epilog="exit codes: 0 done, 1 nothing found, 2 error, 3 index finished with "
                                            "failed records, 75 index busy (--no-wait), 130 interrupted")
    parser.add_argument("--version", action="version", version=f"newsqa {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_CommandParser)

    index = sub.add_parser("index", help="index articles (incremental: only new or changed articles are embedded)")
    index.add_argument("sources", nargs="+", help="files or folders: .txt/.md articles or news dumps, .jsonl, .html; "
                       "URLs of RSS/Atom feeds, (news) sitemaps or article pages; - reads JSONL from stdin")
    _add_index_option(index)
    _add_settings(index, ChunkSettings)
    index.add_argument("--rebuild", action="store_true", help="build from scratch instead of updating the index")
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    index.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_store_option(index)
    index.add_argument("--shard", help="i/n: index only shard i of n (by article id), for n parallel workers "
                       "writing to one --store")
    index.add_argument("--no-wait", action="store_true",
                       help="if another writer holds the index, fail at once (exit 75) instead of waiting for it")

    delete = sub.add_parser("delete", help="remove articles by id")
    delete.add_argument("ids", nargs="+", help="article ids (citation.article_id)")
    _add_index_option(delete)
    _add_store_option(delete)
    delete.add_argument("--no-wait", action="store_true",
                        help="if another writer holds the index, fail at once (exit 75) instead of waiting for it")

    merge = sub.add_parser("merge", help="compact an embedded index's segments into one, purging deleted rows")
    _add_index_option(merge)
    merge.add_argument("--small", action="store_true",
                       help="a tiered merge: only the segments under a tenth of the largest one's size")
    merge.add_argument("--no-wait", action="store_true",
                       help="if another writer holds the index, fail at once (exit 75) instead of waiting for it")

    search = sub.add_parser("search", help="search passages and print them with citations")
    search.add_argument("query")
    _add_index_option(search)
    search.add_argument("-k", type=int, default=DEFAULT_K, help="number of results (default: %(default)s)")
    search.add_argument("--mode", default=DEFAULT_MODE, help="hybrid, dense or lexical (default: %(default)s)")
    search.add_argument("--group", choices=["passage", "article"], default="passage",
                        help="article: one result per article (default: %(default)s)")
    search.add_argument("--date-from")
    search.add_argument("--date-to")
    search.add_argument("--source")
    search.add_argument("--sort", choices=["relevance", "date"], default="relevance",
                        help="relevance, or date: the relevant results newest first (default: %(default)s)")
    search.add_argument("--recency", metavar="DAYS",
                        help="half-life in days (e.g. 30 or 30d) favouring articles newer in the index")
    search.add_argument("--query-dates", action="store_true",
                        help="favour articles of a year or month named in the query (e.g. 'December 2025')")
    search.add_argument("--collapse", choices=["story"],
                        help="story: fold near-duplicate articles into one result listing them as similar")
    search.add_argument("--lang", help="only articles in this language (en, de, ...)")
    search.add_argument("--json", action="store_true", help="print the API's JSON response")
    _add_store_option(search)

    ask = sub.add_parser("ask", help="answer a question with a sentence quoted from the articles, with its citation")
    ask.add_argument("question")
    _add_index_option(ask)
    ask.add_argument("-k", type=int, default=DEFAULT_PASSAGES,
                     help="passages to search for the answer (default: %(default)s)")
    ask.add_argument("--mode", default=DEFAULT_MODE, help="hybrid, dense or lexical (default: %(default)s)")
    ask.add_argument("--date-from")
    ask.add_argument("--date-to")
    ask.add_argument("--source")
    ask.add_argument("--lang", help="only articles in this language (en, de, ...)")
    ask.add_argument("--json", action="store_true", help="print the API's JSON response (GET /v1/answer)")
    _add_store_option(ask)

    evaluate = sub.add_parser("eval", help="measure retrieval: a BEIR benchmark (--beir) or a question set (--qa)")
    target = evaluate.add_mutually_exclusive_group(required=True)
    target.add_argument("--beir", type=Path, help="BEIR folder, e.g. ../shared/datasets/beir-scifact")
    target.add_argument("--qa", type=Path, help="question set over the index, e.g. bench/news-qa.jsonl")
    target.add_argument("--known-items", type=Path,
                        help="known-item queries over the index (bench/known_items.py writes them): hit@1, MRR@10, "
                             "R@10 per mode")
    _add_index_option(evaluate)
    evaluate.add_argument("--mode", action="append", choices=["dense", "lexical", "hybrid"],
                          help="mode to evaluate (repeatable; default: all three for --beir, hybrid for --qa)")
    evaluate.add_argument("--limit", type=int, help="--beir: only the first N test queries (a fast slice)")
    evaluate.add_argument("--split", default="test",
                          help="--beir: qrels split; --known-items: train or test; --qa: the half to report, fit, "
                               "test or all (questions without a split belong to every half) (default: %(default)s)")
    evaluate.add_argument("--max-tokens", type=int,
                          help="--beir: cut documents into passages of this many tokens (default: whole documents)")
    evaluate.add_argument("--cache", type=Path, help="cache directory of embeddings (and --beir indexes) "
                                                     f"(default: ${CACHE_DIR.env} or {CACHE_DIR.shown_default})")
    evaluate.add_argument("--calibrate", action="store_true",
                          help="--qa: fit the confidence weights to the set and print them")
    evaluate.add_argument("--fit-confidence", type=Path, metavar="FILE",
                          help="--qa: --calibrate, then write the fitted confidence weights (of the first "
                               "--mode) to FILE (e.g. indexer/query/confidence_weights.json), the file a search "
                               "loads")
    evaluate.add_argument("--fit-answers", type=Path, metavar="FILE",
                          help="--qa: fit the answer weights and threshold on the fit half of --qa (plus every "
                               "--fit-also set), write them to FILE (e.g. indexer/query/answer_weights.json), "
                               "then report --split with them")
    evaluate.add_argument("--fit-also", action="append", default=[], metavar="QA=INDEX",
                          help="--fit-answers: another question set and its index to fit on, all of it "
                               "(repeatable), e.g. bench/news-qa.jsonl=/tmp/news-index")
    evaluate.add_argument("--embedded-candidates", type=int, metavar="N",
                          help="--fit-answers: candidates embedded per question at query time (0: none, the "
                               "cheap score decides; default: 0)")
    evaluate.add_argument("--weights", type=Path, help="--qa: answer weights to evaluate (default: the packaged ones)")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_store_option(evaluate)

    from service.settings import LOG_LEVEL, McpSettings, ServiceSettings

    serve = sub.add_parser("serve", help="serve the HTTP API and search page")
    _add_settings(serve, ServiceSettings)
    _add_setting(serve, LOG_LEVEL)

    mcp = sub.add_parser("mcp", help="serve the index to LLM clients over MCP (stdio transport)")
    _add_settings(mcp, McpSettings)

    _add_browse_commands(sub)
    _add_follow_parser(sub)
    _add_fetch_options(index)
    return parser


def _add_browse_commands(sub) -> None:
    """`list`, `show` and `stats`: find ids and see what an index holds without searching."""
    listing = sub.add_parser("list", help="list articles, newest first: id, date, source, title")
    _add_index_option(listing)
    _add_store_option(listing)
    listing.add_argument("--source", help="only articles from this source (case ignored)")
    listing.add_argument("--limit", type=int, default=50, help="at most this many articles (default: %(default)s)")
    listing.add_argument("--offset", type=int, default=0, help="skip this many first (default: %(default)s)")
    listing.add_argument("--json", action="store_true", help="print a JSON array")

    show = sub.add_parser("show", help="print one article by id")
    show.add_argument("id", help="article id (from list, search or citation.article_id)")
    _add_index_option(show)
    _add_store_option(show)
    show.add_argument("--json", action="store_true", help="print the API's JSON (GET /v1/articles/ID)")

    stats = sub.add_parser("stats", help="what the index holds: counts, sources with counts, date range")
    _add_index_option(stats)
    _add_store_option(stats)
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(verbose=args.verbose, quiet=args.quiet)
    try:
        return COMMANDS[args.command](args)
    except NewsqaError as exc:
        status = EXIT_BUSY if isinstance(exc, IndexBusy) else EXIT_NOTHING_FOUND if isinstance(exc, NotFound) else EXIT_ERROR
        if getattr(args, "json", False):
            print(json.dumps({"error": {"code": exc.code, "message": exc.message}}, ensure_ascii=False))
        else:
            print(f"newsqa: error: {exc.message}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        print("newsqa: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _configure_logging(*, verbose: bool, quiet: bool) -> None:
    """The CLI's one logging set-up.

    Default: warnings and errors only; libraries' INFO/DEBUG lines (faiss'
    loader, bm25s, sentence-transformers) and their load progress bars are
    hidden. `--verbose` shows everything, `--quiet` errors only.
    """
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    root = logging.getLogger()
    for previous in [h for h in root.handlers if h.get_name() == _LOG_HANDLER]:  # main() called again in-process
        root.removeHandler(previous)
    handler = logging.StreamHandler()
    handler.set_name(_LOG_HANDLER)
    # The handler filters too: some libraries set their own logger to DEBUG on import (bm25s).
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    if not verbose:
        # Read when huggingface_hub is first imported (below, when the model loads): hides
        # transformers' "Loading weights" bar, which is not our progress.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _cmd_index(args) -> int:
    from indexer.ingest.chunk import ChunkSettings
    from indexer.embed import Embedder
    from indexer.store.postgres import parse_shard
    from indexer.ingest.targets import build_store
    from indexer.store.backends import store_target

    settings = ChunkSettings(max_tokens=args.max_tokens, overlap=args.overlap).validate()
    with _web_sources(args) as (sources, web_errors):
        summary = build_store(sources, store_target(args.store, args.index), embedder=Embedder(purpose="passages"),
                              shard=parse_shard(args.shard), settings=settings, rebuild=args.rebuild,
                              progress=False if args.no_progress or args.quiet else None, wait=not args.no_wait)
    summary.errors = web_errors + summary.errors
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
    if summary.errors:
        print(f"newsqa: {len(summary.errors)} record(s) or file(s) failed and were skipped; the rest is indexed",
              file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def _cmd_delete(args) -> int:
    from indexer.ingest.targets import delete_from
    from indexer.store.backends import store_target

    removed = delete_from(store_target(args.store, args.index), args.ids, wait=not args.no_wait)
    missing = [i for i in args.ids if i not in removed]
    print(f"deleted {len(removed)} article(s)" + (f"; not found: {', '.join(missing)}" if missing else ""))
    return EXIT_OK if not missing else EXIT_NOTHING_FOUND


def _cmd_merge(args) -> int:
    from indexer.ingest.build import merge_index
    from indexer.store.embedded import open_index

    version = merge_index(args.index, wait=not args.no_wait, small_only=args.small)
    index = open_index(args.index, lazy=True)
    try:
        held = (f"{index.counts['articles']} articles, {index.counts['chunks']} passages in "
                f"{len(index.segments)} segment(s)")
    finally:
        index.close()
    print(f"merged into {version}: now {held}" if version else f"nothing to merge: {held}")
    return EXIT_OK


def _cmd_search(args) -> int:
    from indexer.embed import Embedder
    from indexer.query.ordering import make_ordering
    from indexer.query.search import Searcher, make_filters
    from indexer.store.backends import open_store, store_target
    from service.schemas import search_out

    ordering = make_ordering(args.sort, args.recency, "auto" if args.query_dates else None, args.collapse)
    embedder = Embedder()
    searcher = Searcher(open_store(store_target(args.store, args.index), model=embedder.name), embedder)
    result = searcher.search(args.query, k=args.k, mode=args.mode, group=args.group,
                             filters=make_filters(args.date_from, args.date_to, args.source, args.lang),
                             ordering=ordering)
    if args.json:
        import msgspec

        print(msgspec.json.encode(search_out(result)).decode())
        return EXIT_OK if result.hits else EXIT_NOTHING_FOUND
    if not result.hits:
        print("no results")
        return EXIT_NOTHING_FOUND
    elif result.low_confidence:
        print(f"low confidence ({result.confidence:.2f}): these may not match the query\n")
    for hit in result.hits:
        c = hit.citation
        where = " · ".join(filter(None, [c.date, c.source, c.section]))
        print(f"{hit.rank}. {c.title}  [{where}]  score {hit.score:.3f}")
        print(f"   {hit.text}")
        print(f"   cite: article {c.article_id}, paragraph {c.paragraph + 1}, chars {c.start}-{c.end}")
        for other in result.similar.get(hit.chunk_id, ()):
            print(f"   similar: {other.title} [{other.date or 'undated'}] article {other.article_id}")
        print()
    return 0


def _cmd_ask(args) -> int:
    from indexer.query.answer import Answerer
    from indexer.embed import Embedder
    from indexer.query.search import Searcher, make_filters
    from indexer.store.backends import open_store, store_target
    from service.schemas import answer_out

    embedder = Embedder()
    searcher = Searcher(open_store(store_target(args.store, args.index), model=embedder.name), embedder)
    result = Answerer(searcher).answer(args.question, k=args.k, mode=args.mode,
                                       filters=make_filters(args.date_from, args.date_to, args.source, args.lang))
    if args.json:
        import msgspec

        print(msgspec.json.encode(answer_out(result)).decode())
        return EXIT_OK if result.answer is not None else EXIT_NOTHING_FOUND
    if result.answer is None:
        print(f"no answer: {result.reason}")
        return EXIT_NOTHING_FOUND
    c = result.answer.citation
    if result.answer.span is not None:
        print(result.answer.span.text)
        print()
    print(result.answer.text)
    print(f"\n— {c.title} [{' · '.join(filter(None, [c.date, c.source, c.section]))}], "
          f"article {c.article_id}, paragraph {c.paragraph + 1}, chars {c.start}-{c.end} "
          f"(confidence {result.confidence:.2f})")
    return 0


def _cmd_eval(args) -> int:
    from indexer.embed import Embedder

    embedder = Embedder()
    if args.beir is not None:
        from indexer.ingest.chunk import ChunkSettings
        from indexer.evaluate.harness import EVAL_MODES, WHOLE_DOCUMENTS, evaluate_beir

        settings = WHOLE_DOCUMENTS if args.max_tokens is None else ChunkSettings(max_tokens=args.max_tokens).validate()
        report = evaluate_beir(args.beir, embedder, modes=args.mode or EVAL_MODES, limit=args.limit,
                               split=args.split, settings=settings, cache=args.cache,
                               progress=sys.stderr.isatty())
        if args.json:
            print(json.dumps(report.as_dict(), indent=2))
            return 0
        passages = "whole documents" if args.max_tokens is None else f"passages of <= {args.max_tokens} tokens"
        print(f"{report.dataset} ({args.split}): {report.queries} queries, {report.documents} documents "
              f"indexed as {report.passages} {passages}" + (" — a slice, not comparable with published figures"
                                                            if report.sliced else ""))
        print(report.table())
        print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()))
        return 0
    from indexer.evaluate.harness import CachedEmbedder, cache_dir, calibrate, evaluate_qa, fit_answers, load_qa
    from indexer.query.answer import AnswerWeights
    from indexer.query.confidence import ConfidenceWeights
    from indexer.query.search import DEFAULT_MODE, Searcher
    from indexer.store.backends import open_store, store_target

    if args.known_items is not None:
        from indexer.evaluate.harness import EVAL_MODES
        from indexer.evaluate.known_items import evaluate_known_items

        searcher = Searcher(open_store(store_target(args.store, args.index), model=embedder.name), embedder)
        known = evaluate_known_items(searcher, args.known_items, modes=args.mode or EVAL_MODES, split=args.split)
        print(json.dumps({"path": known.path, "split": known.split, "queries": known.queries,
                          "skipped": known.skipped, "scores": known.scores}, indent=2) if args.json else known.table())
        return 0
    # Questions and candidate sentences are embedded once across runs (fit, then evaluate, then again).
    embedder = CachedEmbedder(embedder, (args.cache or cache_dir()) / "embeddings")
    searcher = Searcher(open_store(store_target(args.store, args.index), model=embedder.name), embedder)
    modes = args.mode or [DEFAULT_MODE]
    weights = AnswerWeights.load(args.weights) if args.weights else None
    if args.fit_answers:
        sets = [(searcher, load_qa(args.qa, split="fit"))]
        for extra in args.fit_also:
            qa, sep, index = extra.partition("=")
            if not sep:
                raise NewsqaError(f"--fit-also {extra!r} is not QA=INDEX: write e.g. bench/news-qa.jsonl=/tmp/news-index")
            sets.append((Searcher(open_store(index, model=embedder.name), embedder), load_qa(qa)))
        weights = fit_answers(sets, mode=modes[0], embedded=args.embedded_candidates)
        args.fit_answers.write_text(json.dumps(weights.as_dict(), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.fit_answers}: " + json.dumps(weights.fitted_on), file=sys.stderr)
    reports = [evaluate_qa(searcher, args.qa, mode=mode, split=args.split, weights=weights) for mode in modes]
    for report in reports:
        if args.calibrate or args.fit_confidence:
            report.calibration = calibrate(report.outcomes)
    if args.fit_confidence:
        fitted = ConfidenceWeights.from_calibration(reports[0].calibration, qa=str(args.qa), mode=reports[0].mode,
                                                    split=reports[0].split)
        args.fit_confidence.write_text(json.dumps(fitted.as_dict(), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.fit_confidence}: " + json.dumps(fitted.as_dict()), file=sys.stderr)
    for report in reports:
        if args.json:
            print(json.dumps(report.as_dict(), indent=2))
            continue
        print(f"{report.path} [{report.mode}, split {report.split}]: {len(report.outcomes)} questions, "
              f"threshold {report.threshold:.3f}")
        print(report.table())
        types = report.by_type()
        if len(types) > 1:
            print("by answer type (questions, sentence right, short answer right): "
                  + ", ".join(f"{k} {n}/{a}/{b}" for k, (n, a, b) in types.items()))
        for line in report.failures():
            print("  " + line)
        if report.calibration:
            print("calibration: " + json.dumps(report.calibration))
    return 0


def _cmd_serve(args) -> int:
    from service.app import create_app
    from service.server import run_server
    from service.settings import ServiceSettings, settings_with_env

    settings = settings_with_env(_settings_from_args(ServiceSettings, args))
    _require_index(settings.store, settings.index_dir)
    settings.merge_policy()  # out-of-range merge settings are refused before the model loads
    run_server(settings, create_app(settings), log_level=args.log_level)
    return 0


def _cmd_mcp(args) -> int:
    from service.mcp_server import serve_stdio
    from service.settings import McpSettings, settings_with_env

    settings = settings_with_env(_settings_from_args(McpSettings, args))
    _require_index(settings.store, settings.index_dir)
    serve_stdio(settings)
    return 0


def _settings_from_args(group, args):
    """The settings `group` (a dataclass of declared settings) with the values of its flags."""
    from indexer.settings import declared_fields

    return group(**{name: tuple(getattr(args, name) or ()) if s.repeated else getattr(args, name)
                    for name, s in declared_fields(group)})


def _require_index(store: str, index_dir: Path) -> None:
    from indexer.store.embedded import current_version

    if not store and current_version(Path(index_dir)) is None:
        raise NewsqaError(f"no index at {index_dir}: build one with `newsqa index data/ --index {index_dir}`")


def _add_fetch_options(parser: argparse.ArgumentParser) -> None:
    from indexer.ingest.web import FetchSettings

    _add_settings(parser, FetchSettings)


def _fetch_settings(args):
    from indexer.ingest.web import FetchSettings

    return _settings_from_args(FetchSettings, args).validate()


def _add_follow_parser(sub) -> None:
    from indexer.ingest.follow import EVERY, FollowSettings

    follow = sub.add_parser("follow", help="follow RSS/Atom feeds and news sitemaps: each round indexes what is new")
    follow.add_argument("sources_file", metavar="SOURCES", type=Path,
                        help="plain file, one `URL [NAME]` a line (# comments)")
    _add_index_option(follow)
    _add_setting(follow, EVERY)
    follow.add_argument("--once", action="store_true", help="run one round and exit")
    follow.add_argument("--json", action="store_true", help="print each round's report as JSON")
    _add_settings(follow, FollowSettings)
    _add_fetch_options(follow)


@contextlib.contextmanager
def _web_sources(args):
    """`args.sources` with the URLs among them fetched into a temporary JSON-lines file, and the fetch errors."""
    from indexer.ingest.web import is_url

    urls = [s for s in args.sources if is_url(s)]
    if not urls:
        yield args.sources, []
        return
    import tempfile

    from indexer.ingest.follow import fetch_url_records, write_records

    records, errors = fetch_url_records(urls, _fetch_settings(args))
    with tempfile.TemporaryDirectory(prefix="newsqa-web-") as tmp:
        paths = [s for s in args.sources if not is_url(s)]
        if records:
            paths.append(str(write_records(records, Path(tmp) / "web-articles.jsonl")))
        yield paths, errors


def _cmd_follow(args) -> int:
    import time

    from indexer.embed import Embedder
    from indexer.ingest.follow import FollowSettings, follow_round, parse_every, read_source_list

    every = parse_every(args.every)
    sources = read_source_list(args.sources_file)
    fetch = _fetch_settings(args)
    settings = _settings_from_args(FollowSettings, args)
    embedder = Embedder(purpose="passages")
    while True:
        started = time.monotonic()
        try:
            report = follow_round(sources, args.index, embedder=embedder, fetch=fetch, settings=settings)
        except NewsqaError as exc:
            if args.once:
                raise
            # A round that cannot write (disk full, index rebuilt with other settings) is retried next time.
            print(f"newsqa: error: round failed: {exc.message}; retrying in {every:g} s", file=sys.stderr, flush=True)
            time.sleep(every)
            continue
        if args.json:
            print(json.dumps(report.as_dict(), indent=2), flush=True)
        else:
            for source in report.sources:
                if source.error:
                    print(f"source {source.name}: error: {source.error}", file=sys.stderr)
                for page, reason in source.failed:
                    print(f"source {source.name}: {page}: {reason}", file=sys.stderr)
            build = report.build
            print(f"round: {len(sources)} sources ({sum(s.error is not None for s in report.sources)} failed), "
                  f"{sum(s.fetched for s in report.sources)} pages fetched, "
                  + (f"{build.added} articles added, {build.duplicates} duplicates dropped, new version {build.version}"
                     if build is not None and build.version else "nothing new")
                  + f"; {report.requests} requests in {report.seconds:.1f} s", flush=True)
        if args.once:
            return 0 if any(s.error is None for s in report.sources) else 1
        time.sleep(max(0.0, every - (time.monotonic() - started)))


def _open_for_reading(args):
    from indexer.store.backends import open_store, store_target

    return open_store(store_target(args.store, args.index))


def _all_articles(index, *, page: int = 5000):
    """Every article's listing row (id, title, date, source, url, kind), newest first, a page at a time."""
    offset = 0
    while True:
        rows = index.list_articles(limit=page, offset=offset)
        yield from rows
        if len(rows) < page:
            return
        offset += page


def _cmd_list(args) -> int:
    from indexer.errors import InvalidParameter

    if args.limit < 1 or args.offset < 0:
        raise InvalidParameter(f"--limit {args.limit} --offset {args.offset}: use --limit >= 1 and --offset >= 0")
    index = _open_for_reading(args)
    try:
        if args.source:
            wanted = args.source.casefold()
            matching = (r for r in _all_articles(index) if (r["source"] or "").casefold() == wanted)
            rows = [r for _, r in zip(range(args.offset + args.limit), matching)][args.offset:]
        else:
            rows = index.list_articles(limit=args.limit, offset=args.offset)
    finally:
        index.close()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for row in rows:
            print("\t".join([row["article_id"], row["date"] or "-", row["source"] or "-", row["title"]]))
    return EXIT_OK if rows else EXIT_NOTHING_FOUND


def _cmd_show(args) -> int:
    index = _open_for_reading(args)
    try:
        article = index.article(args.id)
    finally:
        index.close()
    if args.json:
        import msgspec

        from service.schemas import article_out

        print(msgspec.json.encode(article_out(article)).decode())
        return EXIT_OK
    print(article.title)
    print(" · ".join(filter(None, [article.date, article.source, article.url])) or "(undated, no source)")
    print(f"id {article.article_id}\n")
    print(article.text)
    return EXIT_OK


def _cmd_stats(args) -> int:
    index = _open_for_reading(args)
    try:
        counts, version = index.counts, index.version
        sources: dict[str, dict] = {}
        dates: list[str] = []
        for row in _all_articles(index):
            if row["kind"] != "news":
                continue
            entry = sources.setdefault(row["source"] or "", {"articles": 0, "first": None, "last": None})
            entry["articles"] += 1
            if row["date"]:
                dates.append(row["date"])
                entry["first"] = min(filter(None, [entry["first"], row["date"]]))
                entry["last"] = max(filter(None, [entry["last"], row["date"]]))
    finally:
        index.close()
    stats = {
        "version": version,
        "articles": counts.get("articles", 0),
        "records": counts.get("records", 0),
        "passages": counts.get("chunks", 0),
        "undated": counts.get("articles", 0) - len(dates),
        "date_from": min(dates, default=None),
        "date_to": max(dates, default=None),
        "sources": [{"source": name or None, **entry} for name, entry in
                    sorted(sources.items(), key=lambda item: (-item[1]["articles"], item[0]))],
    }
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"index version {version}: {stats['articles']} articles, {stats['records']} other records, "
          f"{stats['passages']} passages")
    print(f"dates: {stats['date_from'] or '-'} to {stats['date_to'] or '-'} ({stats['undated']} undated)")
    print(f"sources ({len(stats['sources'])}):")
    for entry in stats["sources"]:
        span = f"{entry['first']} to {entry['last']}" if entry["first"] else "undated"
        print(f"  {entry['source'] or '(none)'}: {entry['articles']} articles, {span}")
    return EXIT_OK


COMMANDS = {"index": _cmd_index, "delete": _cmd_delete, "merge": _cmd_merge, "search": _cmd_search, "serve": _cmd_serve, "ask": _cmd_ask, "eval": _cmd_eval, "mcp": _cmd_mcp}
COMMANDS.update({"list": _cmd_list, "show": _cmd_show, "stats": _cmd_stats, "follow": _cmd_follow})


if __name__ == "__main__":
    sys.exit(main())
