"""docs/openapi.json and the /api/v1 routes must describe the same API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from server.app import create_app
from server.settings import Settings

SPEC = Path(__file__).resolve().parents[2] / "server" / "openapi.json"


def api_routes(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(Settings.from_sources({"data_dir": str(tmp_path)}, environ={}))
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path and path.startswith("/api/") and route.method != "HEAD":
            found.add((route.method, path))
    return found


def spec_routes() -> set[tuple[str, str]]:
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    return {(method.upper(), path) for path, item in spec["paths"].items() for method in item}


def test_every_api_route_is_documented_and_every_documented_route_exists(tmp_path: Path) -> None:
    routes = api_routes(tmp_path)
    documented = spec_routes()
    assert routes - documented == set(), "routes missing from docs/openapi.json"
    assert documented - routes == set(), "documented routes the app does not serve"
    assert len(routes) >= 20


def test_the_spec_is_openapi_3_1_with_an_error_shape() -> None:
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["schemas"]["Error"]["required"] == ["code", "message"]
    for item in spec["paths"].values():
        for operation in item.values():
            assert operation["summary"] and "4XX" in operation["responses"]


async def test_the_running_server_serves_the_spec(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(
        create_app(Settings.from_sources({"data_dir": str(tmp_path)}, environ={}))
    )
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    assert (await response.json())["info"]["title"] == "VisitGate API"
