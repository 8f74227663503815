"""Inference from several Python threads on one shared model (the latency
issue): under no_grad in eval mode, calls run at once (the first on the model,
the others on replicas that share its weights), and every result must equal,
bit for bit, what the same call returns when the calls run one after another.
Training calls keep the exclusive lock; mixing them with concurrent inference
must neither crash nor corrupt anything.
"""
import threading

import numpy as np
import pytest

import cpuformer as cf

THREADS = 4


def run_concurrently(fn, requests, threads=THREADS):
    """fn(request) for every request, from `threads` threads started together."""
    out = [None] * len(requests)
    errors = []
    start = threading.Barrier(threads)

    def work(k):
        try:
            start.wait()
            with cf.no_grad():
                for i in range(k, len(requests), threads):
                    out[i] = fn(requests[i])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    return out


def sequential(fn, requests):
    with cf.no_grad():
        return [fn(r) for r in requests]


def assert_all_equal(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        g = g if isinstance(g, tuple) else (g,)
        w = w if isinstance(w, tuple) else (w,)
        for a, b in zip(g, w):
            np.testing.assert_array_equal(a, b, err_msg=f"request {i}")


def bert(dropout=0.1):
    cfg = cf.BERTConfig(vocab_size=300, max_position_embeddings=64, type_vocab_size=2, n_layer=2, n_head=4,
                        hidden_size=64, intermediate_size=128, pooler=True, dropout=dropout)
    return cf.BERT(cfg).eval()


def bert_requests(n=48, seed=0):
    rng = np.random.default_rng(seed)
    reqs = []
    for i in range(n):
        B, T = 1 + i % 3, 4 + (i * 7) % 40
        mask = np.ones((B, T), np.int64)
        mask[0, T - 1 - i % 3:] = 0
        reqs.append((rng.integers(0, 300, (B, T)), mask))
    return reqs


@pytest.mark.parametrize("entry", ["forward", "pooled_output", "mlm_logits"])
def test_bert_entry_points_from_four_threads_equal_sequential_calls(entry):
    m = bert()
    fn = lambda r: getattr(m, entry)(r[0], attention_mask=r[1])  # noqa: E731
    reqs = bert_requests()
    want = sequential(fn, reqs)
    assert_all_equal(run_concurrently(fn, reqs), want)
    assert_all_equal(run_concurrently(fn, reqs), want)  # the replicas are reused
    assert m._impl.replicas_built >= 1, "no call ever ran concurrently"
    assert m._impl.replicas_built <= THREADS  # one per call running at once, then reused


def test_sentence_encoder_style_stream_and_a_loaded_checkpoint(tmp_path):
    m = bert()
    m.save(tmp_path / "bert.safetensors")
    loaded = cf.load(tmp_path / "bert.safetensors").eval()  # built by the C++ loader: replicas too
    reqs = bert_requests(40, seed=1)
    want = sequential(lambda r: m(r[0], attention_mask=r[1]), reqs)
    assert_all_equal(run_concurrently(lambda r: loaded(r[0], attention_mask=r[1]), reqs), want)
    assert loaded._impl.replicas_built >= 1


def _gpt():
    return cf.GPT(cf.GPTConfig(vocab_size=128, block_size=64, n_layer=2, n_head=2, n_embd=64)).eval()


def _vit():
    return cf.ViT(cf.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=64, n_layer=2, n_head=4,
                               intermediate_size=128, num_classes=10)).eval()


def _encoder():
    layer = cf.nn.TransformerEncoderLayer(64, 4, 128, dropout=0.1, activation="gelu")
    return cf.nn.TransformerEncoder(layer, 2).eval()


CASES = {
    "gpt": (_gpt, lambda rng, i: rng.integers(0, 128, (1 + i % 2, 3 + i % 50))),
    "vit": (_vit, lambda rng, i: rng.standard_normal((1 + i % 2, 3, 16, 16)).astype(np.float32)),
    "encoder": (_encoder, lambda rng, i: rng.standard_normal((1, 5 + i % 30, 64)).astype(np.float32)),
    "mha": (lambda: cf.nn.MultiheadAttention(64, 4).eval(),
            lambda rng, i: rng.standard_normal((2, 3 + i % 20, 64)).astype(np.float32)),
    "linear": (lambda: cf.nn.Linear(64, 96).eval(), lambda rng, i: rng.standard_normal((3 + i, 64)).astype(np.float32)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_and_module_forwards_from_four_threads_equal_sequential_calls(name):
    build, make = CASES[name]
    m = build()
    rng = np.random.default_rng(2)
    reqs = [make(rng, i) for i in range(40)]
    fn = (lambda x: m(x, x, x)) if name == "mha" else m
    assert_all_equal(run_concurrently(fn, reqs), sequential(fn, reqs))


@pytest.mark.parametrize("dtype", ["int8", "bfloat16"])
def test_quantized_models_run_concurrently(dtype):
    q = cf.quantize(bert(), dtype)
    reqs = bert_requests(32, seed=3)
    fn = lambda r: q(r[0], attention_mask=r[1])  # noqa: E731
    assert_all_equal(run_concurrently(fn, reqs), sequential(fn, reqs))


def test_training_steps_interleaved_with_concurrent_inference():
    # One thread trains (grad mode: exclusive) while three others infer: the
    # inference calls see the weights before or after a step, never half of
    # one, and once all threads are done the model equals a twin that only trained.
    m, twin = bert(dropout=0.0), bert(dropout=0.0)  # no dropout: the readers draw no random numbers
    twin.load_state_dict(m.state_dict())
    ids = np.random.default_rng(4).integers(0, 300, (2, 12))
    opt, opt_twin = cf.optim.SGD(m, lr=0.05), cf.optim.SGD(twin, lr=0.05)
    stop = threading.Event()
    outputs = []

    def infer():
        with cf.no_grad():
            while not stop.is_set():
                outputs.append(m(ids))

    readers = [threading.Thread(target=infer) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for model, o in ((m, opt), (twin, opt_twin)):
            model.train()
            for _ in range(5):
                model.zero_grad()
                model.mlm_loss(ids, ids)
                model.backward()
                o.step()
            model.eval()
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert outputs and all(np.isfinite(o).all() for o in outputs)
    with cf.no_grad():
        np.testing.assert_array_equal(m(ids), twin(ids))


def test_set_num_threads_applies_to_every_thread():
    prev = cf.get_num_threads()
    seen = []
    try:
        cf.set_num_threads(1)
        t = threading.Thread(target=lambda: seen.append(cf.get_num_threads()))
        t.start()
        t.join()
    finally:
        cf.set_num_threads(prev)
    assert seen == [1]
