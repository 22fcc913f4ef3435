"""The API docs at `/schema`: Swagger UI served from the `swagger-ui-py` package, no CDN.

Litestar's default docs page loads Redoc `…/latest/…` from a CDN, unpinned and
without an integrity hash, on the service's own origin, and starts it with an
inline script. Here the Swagger UI bundle and CSS come from the installed
`swagger_ui` package (pinned in pyproject.toml) at `/schema/assets/`, and the
page is started by `/static/swagger-init.js`, so the strict Content-Security-
Policy of every response (service/limits.py) holds on the docs page too. The
schema itself is at `/schema/openapi.json`.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.static_files import create_static_files_router

ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css")


def swagger_ui_dir() -> Path | None:
    """The installed Swagger UI files, or None when the package is missing."""
    try:
        import swagger_ui
    except ImportError:
        return None
    path = Path(swagger_ui.__file__).resolve().parent / "static"
    return path if all((path / name).is_file() for name in ASSETS) else None


class LocalSwaggerUI(OpenAPIRenderPlugin):
    """Swagger UI from local files at `/schema` and `/schema/swagger`."""

    def __init__(self, assets: Path) -> None:
        super().__init__(path=["/", "/swagger"])
        self.assets = assets

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(f"{openapi_schema['info']['title']} API {openapi_schema['info']['version']}")
        spec = html.escape(self.get_openapi_json_route(request))
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title>"
            '<link rel="stylesheet" href="/schema/assets/swagger-ui.css">'
            '<script src="/schema/assets/swagger-ui-bundle.js" defer></script>'
            '<script src="/static/swagger-init.js" defer></script>'
            f'</head><body><div id="swagger-ui" data-spec-url="{spec}"></div></body></html>'
        ).encode()

    def receive_router(self, router: Router) -> None:
        router.register(create_static_files_router(path="/assets", directories=[self.assets],
                                                   include_in_schema=False))


class PlainDocs(OpenAPIRenderPlugin):
    """Without the Swagger UI package: a page that links the schema (no third-party code)."""

    def __init__(self) -> None:
        super().__init__(path=["/"])

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        spec = html.escape(self.get_openapi_json_route(request))
        return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>newsqa API</title></head>'
                f'<body><h1>newsqa API</h1><p>The OpenAPI schema is at <a href="{spec}">{spec}</a>; '
                "install <code>swagger-ui-py</code> for the interactive docs.</p></body></html>").encode()


def docs_plugins() -> list[OpenAPIRenderPlugin]:
    assets = swagger_ui_dir()
    return [LocalSwaggerUI(assets) if assets else PlainDocs()]
