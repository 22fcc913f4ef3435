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


def _add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help="PostgreSQL store instead of --index: postgresql://USER@HOST/DB "
                        "(env NEWSQA_STORE; README, PostgreSQL backend)")


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
    _add_store_option(index)
    index.add_argument("--shard", help="i/n: index only shard i of n (by article id), for n parallel workers "
                       "writing to one --store")

    delete = sub.add_parser("delete", help="remove articles by id")
    delete.add_argument("ids", nargs="+", help="article ids (citation.article_id)")
    _add_index_option(delete)
    _add_store_option(delete)

    search = sub.add_parser("search", help="search passages and print them with citations")
    search.add_argument("query")
    _add_index_option(search)
    search.add_argument("-k", type=int, default=5, help="number of passages (default: %(default)s)")
    search.add_argument("--mode", default="hybrid", help="hybrid, dense or lexical (default: %(default)s)")
    search.add_argument("--group", choices=["passage", "article"], default="passage",
                        help="article: one result per article (default: %(default)s)")
    search.add_argument("--date-from")
    search.add_argument("--date-to")
    search.add_argument("--source")
    search.add_argument("--json", action="store_true", help="print the API's JSON response")
    _add_store_option(search)

    ask = sub.add_parser("ask", help="answer a question with a sentence quoted from the articles, with its citation")
    ask.add_argument("question")
    _add_index_option(ask)
    ask.add_argument("-k", type=int, default=5, help="passages to search for the answer (default: %(default)s)")
    ask.add_argument("--mode", default="hybrid", help="hybrid, dense or lexical (default: %(default)s)")
    ask.add_argument("--date-from")
    ask.add_argument("--date-to")
    ask.add_argument("--source")
    ask.add_argument("--json", action="store_true", help="print the API's JSON response (GET /v1/answer)")
    _add_store_option(ask)

    evaluate = sub.add_parser("eval", help="measure retrieval: a BEIR benchmark (--beir) or a question set (--qa)")
    target = evaluate.add_mutually_exclusive_group(required=True)
    target.add_argument("--beir", type=Path, help="BEIR folder, e.g. ../shared/datasets/beir-scifact")
    target.add_argument("--qa", type=Path, help="question set over the index, e.g. bench/news-qa.jsonl")
    _add_index_option(evaluate)
    evaluate.add_argument("--mode", action="append", choices=["dense", "lexical", "hybrid"],
                          help="mode to evaluate (repeatable; default: all three for --beir, hybrid for --qa)")
    evaluate.add_argument("--limit", type=int, help="--beir: only the first N test queries (a fast slice)")
    evaluate.add_argument("--split", default="test",
                          help="--beir: qrels split; --qa: the half to report, fit, test or all (questions without a "
                               "split belong to every half) (default: %(default)s)")
    evaluate.add_argument("--max-tokens", type=int,
                          help="--beir: cut documents into passages of this many tokens (default: whole documents)")
    evaluate.add_argument("--cache", type=Path, help="cache directory of embeddings (and --beir indexes) "
                                                     "(default: $NEWSQA_CACHE_DIR or ~/.cache/newsqa)")
    evaluate.add_argument("--calibrate", action="store_true",
                          help="--qa: fit the confidence weights to the set and print them")
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

    from service.app import ServiceSettings

    serve = sub.add_parser("serve", help="serve the HTTP API and search page")
    for f in fields(ServiceSettings):
        flag = "--index" if f.name == "index_dir" else "--" + f.name.replace("_", "-")
        serve.add_argument(flag, dest=f.name, type=type(f.default), default=f.default,
                           help=f"{f.metadata['help']}" + (f" (env {f.metadata['env']})" if "env" in f.metadata else "")
                           + ("" if f.metadata.get("secret") else " (default: %(default)s)"))
    serve.add_argument("--log-level", default="info")

    mcp = sub.add_parser("mcp", help="serve the index to LLM clients over MCP (stdio transport)")
    _add_index_option(mcp)
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
    from indexer.ingest.chunk import ChunkSettings
    from indexer.embed import Embedder
    from indexer.store.postgres import parse_shard
    from indexer.store.backends import build_store, store_target

    settings = ChunkSettings(max_tokens=args.max_tokens, overlap=args.overlap).validate()
    summary = build_store(args.sources, store_target(args.store, args.index), embedder=Embedder(purpose="passages"),
                          shard=parse_shard(args.shard), settings=settings, rebuild=args.rebuild,
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
    from indexer.store.backends import delete_from, store_target

    removed = delete_from(store_target(args.store, args.index), args.ids)
    missing = [i for i in args.ids if i not in removed]
    print(f"deleted {len(removed)} article(s)" + (f"; not found: {', '.join(missing)}" if missing else ""))
    return 0 if not missing else 1


def _cmd_search(args) -> int:
    from indexer.embed import Embedder
    from indexer.query.search import Searcher, make_filters
    from indexer.store.backends import open_store, store_target
    from service.schemas import search_out

    embedder = Embedder()
    searcher = Searcher(open_store(store_target(args.store, args.index), model=embedder.name), embedder)
    result = searcher.search(args.query, k=args.k, mode=args.mode, group=args.group,
                             filters=make_filters(args.date_from, args.date_to, args.source))
    if args.json:
        import msgspec

        print(msgspec.json.encode(search_out(result)).decode())
        return 0
    if not result.hits:
        print("no results")
    elif result.low_confidence:
        print(f"low confidence ({result.confidence:.2f}): these may not match the query\n")
    for hit in result.hits:
        c = hit.citation
        where = " · ".join(filter(None, [c.date, c.source, c.section]))
        print(f"{hit.rank}. {c.title}  [{where}]  score {hit.score:.3f}")
        print(f"   {hit.text}")
        print(f"   cite: article {c.article_id}, paragraph {c.paragraph + 1}, chars {c.start}-{c.end}\n")
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
                                       filters=make_filters(args.date_from, args.date_to, args.source))
    if args.json:
        import msgspec

        print(msgspec.json.encode(answer_out(result)).decode())
        return 0
    if result.answer is None:
        print(f"no answer: {result.reason}")
        return 1
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
    from indexer.query.search import Searcher
    from indexer.store.embedded import open_index

    # Questions and candidate sentences are embedded once across runs (fit, then evaluate, then again).
    embedder = CachedEmbedder(embedder, (args.cache or cache_dir()) / "embeddings")
    searcher = Searcher(open_index(args.index, model=embedder.name), embedder)
    modes = args.mode or ["hybrid"]
    weights = AnswerWeights.load(args.weights) if args.weights else None
    if args.fit_answers:
        sets = [(searcher, load_qa(args.qa, split="fit"))]
        for extra in args.fit_also:
            qa, sep, index = extra.partition("=")
            if not sep:
                raise NewsqaError(f"--fit-also {extra!r} is not QA=INDEX: write e.g. bench/news-qa.jsonl=/tmp/news-index")
            sets.append((Searcher(open_index(index, model=embedder.name), embedder), load_qa(qa)))
        weights = fit_answers(sets, mode=modes[0], embedded=args.embedded_candidates)
        args.fit_answers.write_text(json.dumps(weights.as_dict(), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.fit_answers}: " + json.dumps(weights.fitted_on), file=sys.stderr)
    reports = [evaluate_qa(searcher, args.qa, mode=mode, split=args.split, weights=weights) for mode in modes]
    for report in reports:
        if args.calibrate:
            report.calibration = calibrate(report.outcomes)
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
    import uvicorn

    from service.app import ServiceSettings, create_app, settings_with_env

    settings = settings_with_env(ServiceSettings(**{f.name: getattr(args, f.name) for f in fields(ServiceSettings)}))
    from indexer.store.embedded import current_version

    if not settings.store and current_version(Path(settings.index_dir)) is None:
        raise NewsqaError(f"no index at {settings.index_dir}: build one with `newsqa index data/ --index {settings.index_dir}`")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level)
    return 0


def _cmd_mcp(args) -> int:
    from indexer.store.embedded import current_version
    from service.mcp_server import serve_stdio

    if current_version(Path(args.index)) is None:
        raise NewsqaError(f"no index at {args.index}: build one with `newsqa index data/ --index {args.index}`")
    serve_stdio(Path(args.index))
    return 0


COMMANDS = {"index": _cmd_index, "delete": _cmd_delete, "search": _cmd_search, "serve": _cmd_serve, "ask": _cmd_ask, "eval": _cmd_eval, "mcp": _cmd_mcp}


if __name__ == "__main__":
    sys.exit(main())
