"""The HTTP face of the exporter: /metrics for Prometheus, / for people (status_page.py), /health
for Kubernetes.

    async with MetricsHttpServer(
        registry=registry, listen="127.0.0.1:0", status=status, readiness=readiness, version="1.0"
    ) as server:
        ...  # scrape server.url + "/metrics"

/metrics negotiates its format and compression exactly as prometheus_client's own handlers do, so
swapping ArmoniK's official exporter for this one changes nothing for the scraper.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from armonik_observe.config import parse_listen
from armonik_observe.exporters.status import Readiness, StatusSnapshot
from armonik_observe.exporters.status_page import DEFAULT_REFRESH_S, render_status_page
from armonik_observe.lifecycle import AsyncService

log = logging.getLogger(__name__)

# Hosts that mean "every interface": not an address a browser or test can connect to.
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


# Renders the whole exposition; True asks for OpenMetrics rather than the text format.
Render = Callable[[bool], bytes]


def render_metrics(
    registry: CollectorRegistry,
    accept: str,
    accept_encoding: str,
    names: list[str],
    render: Render | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The /metrics body and headers, negotiated like prometheus_client's `_bake_output`.

    A `render` function, when given, produces the full exposition faster than the registry's
    encoders; `name[]` filtering still goes through the registry.
    """
    encoder, content_type = choose_encoder(accept)
    if render is not None and not names:
        body = render(content_type.startswith("application/openmetrics-text"))
    else:
        body = encoder(registry.restricted_registry(names) if names else registry)
    headers = {"Content-Type": content_type}
    if gzip_accepted(accept_encoding):
        # Level 1: a fifth of level 9's time on a 10k-series scrape, for a slightly larger body.
        body = gzip.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    return body, headers


def _display_host(host: str) -> str:
    """A host to put in a URL: wildcards become loopback, IPv6 gets brackets."""
    host = _WILDCARD_HOSTS.get(host, host)
    return f"[{host}]" if ":" in host else host


def _bind_error(listen: str, error: OSError) -> OSError:
    """The same errno, with a message a CLI can print as is: which address, and why."""
    # asyncio's own message repeats the address as a tuple; the plain errno text reads better.
    reason = os.strerror(error.errno) if error.errno else str(error)
    return OSError(error.errno, f"cannot listen on {listen}: {reason}")


class MetricsHttpServer(AsyncService):
    """Serves /metrics, /, /health and /health/live on one host:port with aiohttp."""

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        listen: str = "0.0.0.0:9419",
        status: Callable[[], StatusSnapshot],
        readiness: Callable[[], Readiness],
        version: str,
        stop_timeout: float = 5.0,
        render: Render | None = None,
    ) -> None:
        host, self._requested_port = parse_listen(listen)
        self._host = host.strip("[]")  # "[::]:9419" binds "::"
        self._listen = listen
        self._registry = registry
        self._render = render
        self._status = status
        self._readiness = readiness
        self._version = version
        self._stop_timeout = stop_timeout
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Where to reach the server once started, e.g. http://127.0.0.1:9419."""
        return f"http://{_display_host(self._host)}:{self.port}"

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and serve; raises OSError naming the address if it cannot be bound."""
        if self._runner is not None:
            raise RuntimeError("MetricsHttpServer already started")
        # Half the stop budget for in-flight scrapes, so cleanup itself fits in stop_timeout.
        # No access log: a scrape every few seconds would drown everything else.
        runner = web.AppRunner(
            self._application(), access_log=None, shutdown_timeout=self._stop_timeout / 2
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._requested_port).start()
        except OSError as error:
            await runner.cleanup()
            raise _bind_error(self._listen, error) from error
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        # With port 0 the OS picks; several addresses (e.g. "localhost") may each get their own.
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop serving; idempotent, and gives up after `stop_timeout` seconds."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            await asyncio.wait_for(runner.cleanup(), self._stop_timeout)
        except TimeoutError:
            log.warning("HTTP server did not stop within %.1f s", self._stop_timeout)

    # -- handlers -----------------------------------------------------------------------------

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._landing)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        app.router.add_get("/health/live", self._live)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        # Rendered on the loop, deliberately: render time at 10k series is benchmarked
        # separately, and an executor hop would let two scrapes run collect() concurrently
        # on collectors that read state owned by the loop.
        body, headers = render_metrics(
            self._registry,
            request.headers.get("Accept", ""),
            request.headers.get("Accept-Encoding", ""),
            request.query.getall("name[]", []),
            self._render,
        )
        return web.Response(body=body, headers=headers)

    async def _landing(self, request: web.Request) -> web.Response:
        refresh = request.query.get("refresh", "")
        seconds = int(refresh) if refresh.isdigit() else DEFAULT_REFRESH_S
        page = render_status_page(self._status(), self._version, seconds)
        return web.Response(text=page, content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def _health(self, request: web.Request) -> web.Response:
        readiness = self._readiness()
        payload = {"ready": readiness.ready, "reasons": list(readiness.reasons)}
        return web.json_response(payload, status=200 if readiness.ready else 503)

    async def _live(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True})
