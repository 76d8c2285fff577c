"""The `redis_url` fixture gives a reachable, empty database on a real Redis server that keeps
nothing on disk, and the server is gone once the context ends."""

from __future__ import annotations

import socket

import pytest
import redis

from tests.support.redis import RedisServer, running_redis

pytestmark = pytest.mark.redis


def test_redis_url_points_at_an_empty_database_without_persistence(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
        assert client.dbsize() == 0
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
    finally:
        client.close()


def test_the_fixture_empties_only_the_database_it_hands_out(redis_server: RedisServer) -> None:
    first = redis.Redis.from_url(redis_server.url(0))
    other = redis.Redis.from_url(redis_server.url(2))
    try:
        first.set("key", "in db 0")
        other.set("key", "in db 2")
        redis_server.flush(0)  # what `redis_url` does before each test
        assert first.dbsize() == 0
        assert other.get("key") == b"in db 2"
    finally:
        redis_server.flush(2)
        first.close()
        other.close()


def test_the_server_stops_and_its_directory_goes_at_the_end(redis_server: RedisServer) -> None:
    # redis_server only guarantees the binary exists; start a second one to watch it stop.
    with running_redis() as server:
        assert server.port != redis_server.port
        assert server.command("PING") == b"+PONG"
        assert server.directory.is_dir()
    assert not server.directory.exists()
    with pytest.raises(OSError), socket.create_connection((server.host, server.port), 1):
        pass
