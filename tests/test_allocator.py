"""The storage cache: freed large blocks are reused, limits hold, results do not change."""
import numpy as np
import pytest

import cpuformer as cf


@pytest.fixture(autouse=True)
def _restore_limit():
    limit = cf._core.cache_limit()
    yield
    cf.set_cache_limit(limit)


def test_freed_blocks_are_cached_and_reused():
    cf.set_cache_limit(1 << 30)
    cf.empty_cache()
    assert cf.cached_memory() == 0
    m = cf.nn.Linear(256, 1024)
    x = np.random.default_rng(0).standard_normal((128, 256)).astype(np.float32)
    first = np.array(m(x))
    for _ in range(2):
        out = m(x)
    del out
    held = cf.cached_memory()
    for _ in range(5):  # the same shapes again: served from the cache, which does not grow
        out = m(x)
        np.testing.assert_array_equal(out, first)
    del out
    assert cf.cached_memory() == held
    assert held > 0


def test_small_blocks_from_4_kib_are_cached():
    # Latency-sized activations (a few KiB) are reused too; below 4 KiB they
    # go to the system allocator.
    cf.set_cache_limit(1 << 30)
    cf.empty_cache()
    m = cf.nn.Linear(16, 128)  # output 16 x 128 floats = 8 KiB
    x = np.ones((16, 16), np.float32)
    with cf.no_grad():
        del_me = m(x)
        del del_me
        held = cf.cached_memory()
        assert held >= 8 << 10
        for _ in range(5):
            out = m(x)
            del out
        assert cf.cached_memory() == held
        cf.empty_cache()
        tiny = cf.nn.Linear(4, 4)
        out = tiny(np.ones((2, 4), np.float32))  # 32 bytes
        del out
        assert cf.cached_memory() == 0


def test_limit_and_empty_cache():
    cf.set_cache_limit(1 << 30)
    m = cf.nn.Linear(256, 1024)
    x = np.ones((128, 256), np.float32)
    y = m(x)
    del y
    m(x)
    assert cf.cached_memory() > 0
    cf.empty_cache()
    assert cf.cached_memory() == 0
    cf.set_cache_limit(0)  # off: nothing is kept
    m(x)
    assert cf.cached_memory() == 0
    cf.set_cache_limit(100_000)
    for _ in range(3):
        m(np.ones((64, 256), np.float32))
    assert cf.cached_memory() <= 100_000


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True])
def test_bad_limit_raises(bad):
    with pytest.raises(ValueError, match="set_cache_limit"):
        cf.set_cache_limit(bad)


def test_construction_leaves_nothing_in_the_cache():
    # flatten_parameters() copies each parameter into one flat buffer and frees
    # the separate tensor: that memory goes back to the system, not the cache.
    cf.set_cache_limit(1 << 30)
    cf.empty_cache()
    model = cf.GPT(cf.GPTConfig(vocab_size=1024, block_size=64, n_layer=2, n_head=4, n_embd=256))
    n_bytes = 4 * sum(p.size for p in model.parameters().values())
    assert n_bytes > 4 << 20
    assert cf.cached_memory() < n_bytes // 8
