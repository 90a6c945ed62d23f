"""With two worker processes, every scrape counts every worker's requests: under the shipped server
(granian, the Procfile's web: command; makima_supervisor.server prepares the directory) and under gunicorn
(gunicorn.conf.py)."""

from __future__ import annotations

import http.client
import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from soak.server import GunicornServer, WebServer
from tests.metrics.conftest import parse, value

REQUESTS = 120


def _database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    from tests.reliability.conftest import database_url_of

    return database_url_of(settings)


def _get(server: WebServer, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)  # a new connection: any worker
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _healthz_count(samples) -> float:
    return samples.get(
        ("makima_http_requests_total", (("method", "GET"), ("route", "healthz"), ("status", "200"))), 0.0
    )


def _per_worker_healthz(directory, tmp_path) -> dict[str, float]:
    """Each worker's own count, read from its own file alone (counter_<pid>.db)."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        alone = tmp_path / f"alone-{path.stem}"
        alone.mkdir(parents=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        counts[path.stem] = _healthz_count(parse(generate_latest(registry).decode()))
    return counts


#: One connection at a time per gunicorn process: concurrent requests must spread over both workers.
#: granian's workers each listen on their own SO_REUSEPORT socket: the kernel spreads new connections.
SPREAD = {GunicornServer: {"GUNICORN_CMD_ARGS": "--worker-connections 1"}, WebServer: {}}


@pytest.mark.parametrize("server_class", [WebServer, GunicornServer], ids=["shipped", "gunicorn"])
@pytest.mark.django_db(transaction=True)
def test_two_workers_scrapes_add_up_every_workers_requests(tmp_path, server_class):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    # What a previous run left behind is not added to this run's counts (gunicorn.conf.py's on_starting,
    # makima_supervisor.server's prepare_metrics_directory).
    stale = directory / "counter_99999.db"
    stale.write_bytes(b"left over")
    server = server_class(
        database_url=_database_url(),
        secret_key=secrets.token_urlsafe(50),
        workers=2,
        threads=1,
        log_path=tmp_path / "server.log",
        extra_env={"PROMETHEUS_MULTIPROC_DIR": str(directory), **SPREAD[server_class]},
    )
    with server:
        before = parse(_get(server, "/metrics")[1].decode())
        healthz_before = _healthz_count(before)
        assert not stale.exists()
        sent = 0
        for batch in range(10):  # until both workers have served some (the kernel may favour one for a while)
            with ThreadPoolExecutor(max_workers=8) as pool:
                statuses = list(pool.map(lambda _: _get(server, "/healthz")[0], range(REQUESTS)))
            assert statuses == [200] * REQUESTS
            sent += REQUESTS
            per_worker = _per_worker_healthz(directory, tmp_path / str(batch))
            if len([n for n in per_worker.values() if n > 0]) == 2:
                break
        seen = set()
        for _ in range(6):  # scrapes land on either worker: each must see all the requests
            status, body = _get(server, "/metrics")
            assert status == 200
            samples = parse(body.decode())
            seen.add(value(samples, "makima_http_requests_total", route="healthz", method="GET", status="200"))
            assert value(samples, "makima_metrics_source_up", source="supervisors") == 1
        assert seen == {healthz_before + sent}
        per_worker = _per_worker_healthz(directory, tmp_path / "end")
        assert len([n for n in per_worker.values() if n > 0]) == 2, per_worker  # both workers served some
        assert sum(per_worker.values()) == healthz_before + sent
