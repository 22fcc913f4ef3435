"""The edges: the Litestar app (API, page, tools, admin), the CLI and the MCP server.

Domain errors from `indexer` are translated here into HTTP errors, exit codes and JSON-RPC errors.
May import any `indexer` layer; `indexer` never imports `service`.
"""
