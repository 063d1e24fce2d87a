"""The page and the OpenAPI docs: HTML routes, kept out of the API's schema."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from webchat.web.guard import viewer
from webchat.web.runtime import VERSION, runtime


def resource_dir(name: str) -> Path:
    """`templates/` and `static/` sit in the package inside a wheel, beside it in a checkout."""
    package = Path(__file__).resolve().parent.parent
    inside = package / name
    return inside if inside.is_dir() else package.parent / name


router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=resource_dir("templates"))


@router.get("/", response_class=HTMLResponse)
async def page(request: Request) -> HTMLResponse:
    rt = runtime(request.app)
    role = rt.settings.role
    heading = {"server": "TCP Server", "client": "TCP Client"}.get(role, "Room")  # the seed's
    where = rt.role.address[rt.role.address.rindex(":") :] if role == "server" else rt.role.address
    context: dict[str, object] = {"title": f"webchat · {role} {where}", "heading": heading}
    context["role"] = role
    context["viewer"] = viewer(request.scope)
    context["version"] = VERSION
    return templates.TemplateResponse(request, "index.html", context)


SWAGGER = "/static/swagger"
"""Where Swagger UI's files are served from this process (no CDN): open like `/static/`."""


def swagger_dir() -> Path:
    """Swagger UI 5, as the `fastapi-offline` package ships it."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    """Swagger UI under a CSP that allows its one inline script by hash, not 'unsafe-inline'."""
    reply = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{request.app.title} - API",
        swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER}/favicon.png",
    )
    body = bytes(reply.body).decode()
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in re.findall(r"<script>(.*?)</script>", body, re.S)
    )
    reply.headers["content-security-policy"] = (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
    )
    return reply
