"""FastAPI dependencies and their ``Annotated`` aliases (the full-stack-fastapi-template pattern).

Why here: routes declare what they need (``PredictorDep``, ``SettingsDep``) and which guard applies
(``ApiKeyDep``, ``AdminKeyDep``, ``JsonBodyDep``, ``enforce_rate_limit``; ``ShedFirstRoute`` refuses overload before any of them); tests swap any of them with
``app.dependency_overrides``. Nothing is global: settings and the predictor live on ``app.state``. Every dependency is ``async def``
although none awaits: a plain ``def`` would run in the thread pool, and each such hop makes the event
loop wait for the GIL again, behind the batcher's thread (measurable under load).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader

from serving.api.errors import Unauthorized, UnsupportedMediaType
from serving.api.predictor import SharedPredictor
from serving.api.ratelimit import KeyRateLimits, identity
from serving.api.settings import Settings

# Declares the scheme in OpenAPI (Swagger's "Authorize" button); the header actually read is settings.api_key_header.
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key from FRONTLINE_API_KEYS.")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_predictor(request: Request) -> SharedPredictor:
    return request.app.state.predictor


SettingsDep = Annotated[Settings, Depends(get_settings)]
PredictorDep = Annotated[SharedPredictor, Depends(get_predictor)]


def _check(request: Request, settings: Settings, accepted: list[str], what: str) -> str | None:
    if not accepted:
        return None  # authentication disabled (warned about at startup)
    given = request.headers.get(settings.api_key_header)
    if not given:
        raise Unauthorized(f"Missing API key: send it in the {settings.api_key_header} header.",
                           headers={"WWW-Authenticate": "ApiKey"})
    if not any(hmac.compare_digest(given.encode(), k.encode()) for k in accepted):
        raise Unauthorized(f"Invalid API key for {what}.", headers={"WWW-Authenticate": "ApiKey"})
    return given


def inference_keys(settings: Settings) -> list[str]:
    return [*settings.api_keys, *settings.admin_api_keys]


def admin_keys(settings: Settings) -> list[str]:
    return settings.admin_api_keys or settings.api_keys


async def require_api_key(request: Request, settings: SettingsDep,
                    _doc: Annotated[str | None, Depends(api_key_scheme)] = None) -> str | None:
    return _check(request, settings, inference_keys(settings), "this API")


async def require_admin_key(request: Request, settings: SettingsDep,
                      _doc: Annotated[str | None, Depends(api_key_scheme)] = None) -> str | None:
    return _check(request, settings, admin_keys(settings), "admin routes")


async def require_json(request: Request) -> None:
    """415 unless the body is declared JSON (``application/json`` or ``application/*+json``)."""
    ctype = request.headers.get("content-type")
    if ctype:
        msg = Message()
        msg["content-type"] = ctype
        sub = msg.get_content_subtype()
        if msg.get_content_maintype() == "application" and (sub == "json" or sub.endswith("+json")):
            return
    raise UnsupportedMediaType(f"Content-Type must be application/json, got {ctype or 'none'}.")


async def enforce_rate_limit(request: Request, response: Response,
                             api_key: Annotated[str | None, Depends(require_api_key)]) -> None:
    """Charge the call to its API key (429 ``rate_limited`` when spent) and say where the key stands."""
    limits: KeyRateLimits | None = getattr(request.app.state, "rate_limits", None)
    if limits is None:
        return
    quota = await limits.hit(identity(api_key, request.client.host if request.client else None))
    if quota is not None:
        response.headers.update(quota.headers())


class ShedFirstRoute(APIRoute):
    """A route that refuses overload (429 ``overloaded``) before anything else is done for the call.

    Why a route class (FastAPI's documented hook) and not a dependency: dependencies run after the body
    is read and decoded and the other dependencies are solved. Under overload most calls are refused,
    and each refusal takes CPU from the model; here a refusal costs only the routing.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def shed_first(request: Request) -> Response:
            request.app.state.predictor.batcher.precheck()  # even one post would miss the deadline: 429
            return await handler(request)

        return shed_first


ApiKeyDep = Annotated[str | None, Depends(require_api_key)]
AdminKeyDep = Annotated[str | None, Depends(require_admin_key)]
JsonBodyDep = Annotated[None, Depends(require_json)]
