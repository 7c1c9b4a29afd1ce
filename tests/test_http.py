"""MetricsHttpServer over real HTTP on port 0: negotiation, filtering, landing page, health."""

from __future__ import annotations

import gzip
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from armonik_observe.exporters.http import MetricsHttpServer, Readiness
from armonik_observe.exporters.status import StatusSnapshot

TEXT_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


class Switch:
    """A readiness callable the test flips."""

    def __init__(self) -> None:
        self.readiness = Readiness(ready=True)

    def __call__(self) -> Readiness:
        return self.readiness


def make_registry() -> CollectorRegistry:
    """A fresh registry with one metric of each common kind."""
    registry = CollectorRegistry()
    Gauge("armonik_test_sessions", "Followed sessions.", registry=registry).set(3)
    Counter("armonik_test_events", "Events seen.", registry=registry).inc(7)
    Histogram("armonik_test_latency_seconds", "Latency.", registry=registry).observe(0.2)
    return registry


def make_server(switch: Switch | None = None, listen: str = "127.0.0.1:0") -> MetricsHttpServer:
    return MetricsHttpServer(
        registry=make_registry(),
        listen=listen,
        status=lambda: StatusSnapshot(at=0.0, endpoint="http://<script>alert(1)</script>",
                                      up=True, readiness=Readiness(ready=True)),
        readiness=switch or Switch(),
        version="1.2.3",
    )


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
async def server(switch: Switch) -> AsyncIterator[MetricsHttpServer]:
    async with make_server(switch) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    # No automatic decompression, so the tests see exactly what a scraper receives.
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


async def get(
    client: aiohttp.ClientSession, url: str, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and raw body; no Accept-Encoding unless the test asks for one."""
    headers.setdefault("Accept-Encoding", "identity")
    async with client.get(url, headers=headers) as response:
        return response.status, dict(response.headers), await response.read()


# -- /metrics ---------------------------------------------------------------------------------


async def test_metrics_default_is_prometheus_text(
    server: MetricsHttpServer, client: aiohttp.ClientSession
) -> None:
    status, headers, body = await get(client, server.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"] == TEXT_0_0_4
    assert "Content-Encoding" not in headers
    text = body.decode()
    assert "armonik_test_sessions 3.0\n" in text
    assert "armonik_test_events_total 7.0\n" in text
    assert 'armonik_test_latency_seconds_bucket{le="0.25"} 1.0\n' in text
    assert "# EOF" not in text


async def test_metrics_openmetrics_when_asked(
    server: MetricsHttpServer, client: aiohttp.ClientSession
) -> None:
    status, headers, body = await get(client, server.url + "/metrics", Accept=OPENMETRICS)
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert b"armonik_test_events_total 7.0\n" in body


async def test_metrics_gzip_when_accepted(
    server: MetricsHttpServer, client: aiohttp.ClientSession
) -> None:
    _, _, plain = await get(client, server.url + "/metrics")
    status, headers, body = await get(
        client, server.url + "/metrics", **{"Accept-Encoding": "gzip, deflate"}
    )
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"] == TEXT_0_0_4
    assert gzip.decompress(body) == plain


async def test_metrics_name_filter(
    server: MetricsHttpServer, client: aiohttp.ClientSession
) -> None:
    url = server.url + "/metrics?name[]=armonik_test_sessions&name[]=armonik_test_events_total"
    _, _, body = await get(client, url)
    text = body.decode()
    assert "armonik_test_sessions 3.0" in text
    assert "armonik_test_events_total 7.0" in text
    assert "armonik_test_latency_seconds" not in text


# -- landing page and health ------------------------------------------------------------------


async def test_landing_page_links_and_escaped_status(
    server: MetricsHttpServer, client: aiohttp.ClientSession
) -> None:
    status, headers, body = await get(client, server.url + "/")
    page = body.decode()
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "<title>armonik-observe</title>" in page
    assert '<a href="metrics">' in page
    assert '<a href="health">' in page
    assert "1.2.3" in page
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "UP · READY" in page


async def test_health_follows_readiness(
    server: MetricsHttpServer, client: aiohttp.ClientSession, switch: Switch
) -> None:
    async with client.get(server.url + "/health") as response:
        assert response.status == 200
        assert await response.json() == {"ready": True, "reasons": []}

    switch.readiness = Readiness(ready=False, reasons=("control plane unreachable",))
    async with client.get(server.url + "/health") as response:
        assert response.status == 503
        assert await response.json() == {
            "ready": False,
            "reasons": ["control plane unreachable"],
        }

    switch.readiness = Readiness(ready=True)
    async with client.get(server.url + "/health") as response:
        assert response.status == 200


async def test_liveness_ignores_readiness(
    server: MetricsHttpServer, client: aiohttp.ClientSession, switch: Switch
) -> None:
    switch.readiness = Readiness(ready=False, reasons=("starting",))
    status, _, _ = await get(client, server.url + "/health/live")
    assert status == 200


async def test_unknown_path_is_404(
    server: MetricsHttpServer, client: aiohttp.ClientSession
) -> None:
    status, _, _ = await get(client, server.url + "/nope")
    assert status == 404


# -- life cycle -------------------------------------------------------------------------------


async def test_stop_is_idempotent(client: aiohttp.ClientSession) -> None:
    server = make_server()
    await server.stop()  # before start: nothing to do
    await server.start()
    url = server.url
    await server.stop()
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(client, url + "/health/live")


async def test_start_twice_is_refused() -> None:
    async with make_server() as server:
        with pytest.raises(RuntimeError, match="already started"):
            await server.start()


async def test_two_servers_on_port_zero_get_different_ports() -> None:
    async with make_server() as first, make_server() as second:
        assert first.port != 0
        assert second.port != 0
        assert first.port != second.port
        assert first.url == f"http://127.0.0.1:{first.port}"


async def test_wildcard_listen_gives_a_loopback_url(client: aiohttp.ClientSession) -> None:
    async with make_server(listen="0.0.0.0:0") as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        status, _, _ = await get(client, server.url + "/health/live")
        assert status == 200


async def test_port_in_use_raises_oserror_naming_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        server = make_server(listen=listen)
        with pytest.raises(OSError, match=f"cannot listen on {listen}"):
            await server.start()
        await server.stop()  # a failed start leaves nothing to stop


@pytest.mark.parametrize("listen", ["9419", "localhost", ":9419", "host:port", "host:70000"])
def test_malformed_listen_raises_value_error_naming_the_option(listen: str) -> None:
    with pytest.raises(ValueError, match="--listen"):
        make_server(listen=listen)
