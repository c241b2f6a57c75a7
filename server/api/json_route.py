"""Request bodies parsed with orjson: strict UTF-8 (a lone surrogate such as "\\ud800" is invalid JSON there, while
Python's json accepts it and the text later fails to encode, deep in the request path, as a 500), and faster. The
parsed body is kept on the request, so a route that needs it raw (the hosted upstream) does not parse it again."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute


class OrjsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            # orjson.JSONDecodeError subclasses json.JSONDecodeError: FastAPI reports it as invalid JSON (400).
            self._json = orjson.loads(await self.body())
        return self._json


class OrjsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def parse_with_orjson(request: Request) -> Response:
            return await handler(OrjsonRequest(request.scope, request.receive))

        return parse_with_orjson
