from revopt.redis_cache import RedisCache


def test_one_redis_client_serves_every_call_of_a_pool():
    # given a backend (no connection is made until a command runs)
    backend = RedisCache("redis://127.0.0.1:1/0", {})

    # when
    first = backend._cache.get_client("a")
    second = backend._cache.get_client("b", write=True)

    # then
    assert first is second
    assert first.connection_pool is backend._cache._get_connection_pool(False)
