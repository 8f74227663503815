"""GPT generation for real use: left-padded batches, stop tokens, repetition
penalty, streaming and the KV cache that drops stopped rows. References: each
row generated alone, a NumPy replay of the logits processors, and Hugging
Face's GPT2LMHeadModel.generate on the same weights."""
import numpy as np
import pytest

import cpuformer as cf
from cpuformer import _core

V = 211


def make_model(seed=3, block_size=48, **over):
    """A small GPT with varied weights (the N(0, 0.02) init decodes one token forever)."""
    cfg = cf.GPTConfig(vocab_size=V, block_size=block_size, n_layer=2, n_head=4, n_embd=64, dropout=0.0, **over)
    cf.manual_seed(seed)
    m = cf.GPT(cfg).eval()
    g = np.random.default_rng(seed)
    m.load_state_dict({k: (v + g.normal(0, 0.3, v.shape)).astype(np.float32) for k, v in m.state_dict().items()})
    return m


def padded(lens, seed=0, fill=5):
    """Left-padded prompts: ids [B, T] (padding = fill), mask [B, T], and the unpadded rows."""
    g = np.random.default_rng(seed)
    T = max(lens)
    ids = np.full((len(lens), T), fill, np.int64)
    mask = np.zeros((len(lens), T), np.int64)
    rows = []
    for i, n in enumerate(lens):
        r = g.integers(0, V, n)
        ids[i, T - n:] = r
        mask[i, T - n:] = 1
        rows.append(r)
    return ids, mask, rows


@pytest.fixture(scope="module")
def model():
    return make_model()


LENS = [3, 11, 7, 1, 11]


@pytest.mark.parametrize("new", [20, 45])  # 45: 11 + 45 > block_size 48, the context is cropped
def test_padded_rows_equal_rows_alone_greedy(model, new):
    ids, mask, rows = padded(LENS)
    out = model.generate(ids, new, temperature=0, attention_mask=mask)
    T = ids.shape[1]
    assert out.shape == (len(LENS), T + new)
    np.testing.assert_array_equal(out[:, :T], ids)  # the prompt comes back as given, padding included
    for i, r in enumerate(rows):
        alone = model.generate(r[None], new, temperature=0)
        np.testing.assert_array_equal(out[i, T:], alone[0, len(r):], err_msg=f"row {i}")


def test_padded_logits_equal_rows_alone(model):
    ids, mask, rows = padded(LENS, seed=1)
    steps = list(model.generate_stream(ids, 12, temperature=0, attention_mask=mask, output_logits=True))
    assert len(steps) == 12
    for i, r in enumerate(rows):
        alone = list(model.generate_stream(r, 12, temperature=0, output_logits=True))
        for s, ((tok_b, log_b), (tok_1, log_1)) in enumerate(zip(steps, alone)):
            assert tok_b[i] == tok_1
            # Equal to 1e-5 of the row's scale (a batch and a single row take different GEMM
            # paths, so the last bits differ; built with sanitizers the gap reaches 2.4e-6).
            err = np.abs(log_b[i] - log_1).max() / np.abs(log_1).max()
            assert err <= 1e-5, f"row {i} step {s}: {err:.2e}"


def test_unpadded_mask_and_no_mask_agree(model):
    ids = np.random.default_rng(2).integers(0, V, (3, 6))
    a = model.generate(ids, 10, temperature=0)
    b = model.generate(ids, 10, temperature=0, attention_mask=np.ones_like(ids))
    np.testing.assert_array_equal(a, b)


def test_padding_positions_may_hold_any_id(model):
    ids, mask, _ = padded([2, 5])
    a = model.generate(ids, 8, temperature=0, attention_mask=mask)
    ids2 = ids.copy()
    ids2[mask == 0] = 10**6  # never looked up
    b = model.generate(ids2, 8, temperature=0, attention_mask=mask)
    np.testing.assert_array_equal(a[:, ids.shape[1]:], b[:, ids.shape[1]:])


# ---------------------------------------------------------------------------
# Stop tokens, min_new_tokens, repetition penalty


def test_eos_stops_a_row_and_pads_after_it(model):
    ids, mask, _ = padded(LENS)
    T = ids.shape[1]
    free = model.generate(ids, 20, temperature=0, attention_mask=mask)
    eos = int(free[0, T + 3])  # row 0 emits this at step 3 (or earlier)
    out = model.generate(ids, 20, temperature=0, attention_mask=mask, eos_token_id=eos, pad_token_id=7)
    for i in range(len(LENS)):
        new, ref = out[i, T:], free[i, T:]
        hits = np.flatnonzero(ref == eos)
        stop = hits[0] if len(hits) else None
        if stop is None:
            np.testing.assert_array_equal(new[:len(new)], ref[:len(new)])
        else:
            np.testing.assert_array_equal(new[:stop + 1], ref[:stop + 1])
            assert (new[stop + 1:] == 7).all(), f"row {i} is not padded after its eos"


def test_generation_ends_when_every_row_stopped(model):
    ids, mask, _ = padded(LENS)
    T = ids.shape[1]
    free = model.generate(ids, 6, temperature=0, attention_mask=mask)
    eos = sorted({int(t) for t in free[:, T + 2]})  # every row emits one of these by step 2
    out = model.generate(ids, 30, temperature=0, attention_mask=mask, eos_token_id=eos)
    assert out.shape[1] <= T + 3
    for i in range(len(LENS)):
        row = out[i, T:]
        first = np.flatnonzero(np.isin(row, eos))[0]
        assert (row[first + 1:] == eos[0]).all()  # pad_token_id defaults to the first eos id
    streamed = list(model.generate_stream(ids, 30, temperature=0, attention_mask=mask, eos_token_id=eos))
    assert len(streamed) == out.shape[1] - T


def test_min_new_tokens_suppresses_eos(model):
    ids, mask, _ = padded(LENS)
    T = ids.shape[1]
    free = model.generate(ids, 1, temperature=0, attention_mask=mask)
    eos = int(free[1, T])  # row 1's first token
    out = model.generate(ids, 12, temperature=0, attention_mask=mask, eos_token_id=eos, min_new_tokens=5)
    assert not (out[:, T:T + 5] == eos).any()


def _replay(model, ids, mask, new, penalty, eos=(), min_new=0):
    """Greedy decoding replayed in NumPy from the step logits: the penalty over the row's
    tokens (padding excluded), eos suppression, argmax."""
    steps = list(model.generate_stream(ids, new, temperature=0, attention_mask=mask, repetition_penalty=penalty,
                                       eos_token_id=list(eos) or None, min_new_tokens=min_new, output_logits=True))
    seen = [set(ids[i][mask[i] == 1].tolist()) for i in range(len(ids))]
    stopped = [False] * len(ids)
    for s, (tokens, logits) in enumerate(steps):
        for i in range(len(ids)):
            if stopped[i]:
                assert np.isnan(logits[i]).all()
                continue
            z = logits[i].astype(np.float64)
            for t in seen[i]:
                z[t] = z[t] * penalty if z[t] < 0 else z[t] / penalty
            if s < min_new:
                z[list(eos)] = -np.inf
            assert tokens[i] == int(np.argmax(z)), f"row {i} step {s}"
            seen[i].add(int(tokens[i]))
            stopped[i] = int(tokens[i]) in eos
    return steps


@pytest.mark.parametrize("penalty", [1.7, 0.6])
def test_repetition_penalty_follows_the_definition(model, penalty):
    ids, mask, _ = padded(LENS, seed=4)
    steps = _replay(model, ids, mask, 15, penalty)
    plain = model.generate(ids, 15, temperature=0, attention_mask=mask)
    penalised = np.stack([t for t, _ in steps], 1)
    assert not np.array_equal(penalised, plain[:, ids.shape[1]:]), "the penalty changed nothing: the test cannot fail"


def test_processors_together_replayed(model):
    ids, mask, _ = padded(LENS, seed=5)
    T = ids.shape[1]
    free = model.generate(ids, 3, temperature=0, attention_mask=mask)
    _replay(model, ids, mask, 16, 1.3, eos=(int(free[2, T + 1]), int(free[0, T])), min_new=2)


# ---------------------------------------------------------------------------
# Hugging Face generate on the same weights


@pytest.fixture(scope="module")
def hf_pair(tmp_path_factory):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    m = make_model(seed=7)
    d = tmp_path_factory.mktemp("gpt2")
    m.save_pretrained(str(d))
    transformers.logging.set_verbosity_error()
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(d)).eval()
    return m, hf, torch


@pytest.mark.parametrize("kw", [
    {},
    {"repetition_penalty": 1.5},
    {"repetition_penalty": 0.7},
    {"eos": "row1", "pad_token_id": 9},
    {"eos": "row1", "min_new_tokens": 6},
    {"eos": "all", "repetition_penalty": 1.2},
], ids=["plain", "penalty1.5", "penalty0.7", "eos", "eos+min_new", "all-stop+penalty"])
def test_greedy_equals_transformers_generate(hf_pair, kw):
    m, hf, torch = hf_pair
    ids, mask, _ = padded([3, 11, 7, 1], seed=8, fill=0)
    T = ids.shape[1]
    kw = dict(kw)
    which = kw.pop("eos", None)
    if which is not None:
        free = m.generate(ids, 8, temperature=0, attention_mask=mask)
        kw["eos_token_id"] = int(free[1, T + 3]) if which == "row1" else sorted({int(t) for t in free[:, T + 4]})
    new = 24
    ours = m.generate(ids, new, temperature=0, attention_mask=mask, **kw)
    hkw = dict(kw)
    hkw.setdefault("pad_token_id", kw["eos_token_id"] if "eos_token_id" in kw and isinstance(kw["eos_token_id"], int)
                   else (kw["eos_token_id"][0] if "eos_token_id" in kw else 0))
    if "eos_token_id" not in hkw:
        hkw["eos_token_id"] = None
    with torch.inference_mode():
        theirs = hf.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), max_new_tokens=new,
                             do_sample=False, **hkw).numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)
    if which == "all":
        assert ours.shape[1] < T + new  # ended early, as Hugging Face does


# ---------------------------------------------------------------------------
# Streaming and the KV cache


def test_streamer_and_generate_stream_match_generate(model):
    ids, mask, _ = padded(LENS, seed=9)
    T = ids.shape[1]
    kw = dict(temperature=0.8, top_k=20, seed=11, attention_mask=mask, eos_token_id=[3, 4])
    out = model.generate(ids, 15, **kw)
    got = []
    out2 = model.generate(ids, 15, streamer=lambda t: got.append(t.copy()), **kw)
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(np.stack(got, 1), out[:, T:])
    assert all(t.dtype == np.int64 and t.shape == (len(LENS),) for t in got)
    stream = np.stack(list(model.generate_stream(ids, 15, **kw)), 1)
    np.testing.assert_array_equal(stream, out[:, T:])

    class Collector:  # Hugging Face's streamer protocol: put() per step, end() once
        def __init__(self):
            self.steps, self.ended = [], 0

        def put(self, t):
            self.steps.append(t)

        def end(self):
            self.ended += 1

    c = Collector()
    model.generate(ids, 15, streamer=c, **kw)
    assert c.ended == 1 and len(c.steps) == out.shape[1] - T


def test_one_d_prompt_streams_scalars(model):
    r = np.array([4, 8, 15])
    out = model.generate(r, 5, temperature=0)
    assert out.shape == (8,)
    toks = [int(t) for t in model.generate_stream(r, 5, temperature=0)]
    assert toks == out[3:].tolist()


def test_breaking_out_of_the_stream_frees_the_cache(model):
    ids, mask, _ = padded(LENS)
    assert _core.GPTGeneration.live_cache_bytes() == 0
    for i, _ in enumerate(model.generate_stream(ids, 30, temperature=0, attention_mask=mask)):
        assert _core.GPTGeneration.live_cache_bytes() > 0
        if i == 2:
            break
    assert _core.GPTGeneration.live_cache_bytes() == 0
    with pytest.raises(RuntimeError, match="boom"):
        for _ in model.generate_stream(ids, 30, temperature=0, attention_mask=mask):
            raise RuntimeError("boom")
    assert _core.GPTGeneration.live_cache_bytes() == 0
    with pytest.raises(ZeroDivisionError):
        model.generate(ids, 30, temperature=0, attention_mask=mask, streamer=lambda t: 1 / 0)
    assert _core.GPTGeneration.live_cache_bytes() == 0


def test_stopped_rows_leave_the_cache(model):
    ids, mask, _ = padded(LENS)
    T = ids.shape[1]
    free = model.generate(ids, 12, temperature=0, attention_mask=mask)
    eos = [int(free[0, T + 1]), int(free[2, T + 1])]
    req = _core.GPTGeneration(model._impl, ids, 12, 0.0, 0, 1.0, None, mask, eos, -1, 1.0, 0)
    sizes, rows = [], []
    while req.step(False) is not None:
        sizes.append(req.cache_bytes)
        rows.append(req.live_rows)
    stopped = {i for i in range(len(LENS)) if np.isin(free[i, T:T + 2], eos).any()}
    assert len(stopped) >= 2
    assert rows[1] == len(LENS) - len(stopped)  # compacted right after the step that stopped them
    per_row = sizes[0] // len(LENS)
    assert sizes[1] == per_row * rows[1]
    np.testing.assert_array_equal(req.result()[:, :T + 2], free[:, :T + 2])


def test_sampling_is_unchanged_by_other_rows_stopping(model):
    """Row b's draw at step s is fixed: stopping other rows (and compacting the cache) changes nothing."""
    ids, mask, _ = padded(LENS, seed=12)
    T = ids.shape[1]
    kw = dict(temperature=1.0, top_p=0.9, seed=5, attention_mask=mask)
    free = model.generate(ids, 16, **kw)
    eos = int(free[3, T + 2])
    out = model.generate(ids, 16, eos_token_id=eos, **kw)
    for i in range(len(LENS)):
        hits = np.flatnonzero(free[i, T:] == eos)
        end = hits[0] + 1 if len(hits) else 16
        np.testing.assert_array_equal(out[i, T:T + end], free[i, T:T + end], err_msg=f"row {i}")
    again = model.generate(ids, 16, eos_token_id=eos, **kw)
    np.testing.assert_array_equal(out, again)


@pytest.mark.parametrize("dtype", ["int8", "bfloat16"])
def test_quantized_models_generate_padded_batches(model, dtype):
    q = cf.quantize(model, dtype)
    ids, mask, rows = padded(LENS, seed=13)
    T = ids.shape[1]
    out = q.generate(ids, 10, temperature=0, attention_mask=mask, repetition_penalty=1.3, eos_token_id=[1, 2])
    for i, r in enumerate(rows):
        alone = q.generate(r[None], 10, temperature=0, repetition_penalty=1.3, eos_token_id=[1, 2])
        n = alone.shape[1] - len(r)
        np.testing.assert_array_equal(out[i, T:T + n], alone[0, len(r):], err_msg=f"{dtype} row {i}")


def test_huge_top_k_means_no_filtering(model):
    ids, mask, _ = padded([2, 4])
    a = model.generate(ids, 5, temperature=0.7, top_k=10**30, seed=1, attention_mask=mask)
    b = model.generate(ids, 5, temperature=0.7, seed=1, attention_mask=mask)
    np.testing.assert_array_equal(a, b)


def test_max_new_tokens_zero_returns_the_prompt(model):
    ids, mask, _ = padded([2, 4])
    np.testing.assert_array_equal(model.generate(ids, 0, attention_mask=mask), ids)
    assert list(model.generate_stream(ids, 0, attention_mask=mask)) == []


# ---------------------------------------------------------------------------
# Bad arguments


@pytest.mark.parametrize("kw,err,match", [
    (dict(attention_mask=np.ones((2, 3))), ValueError, "attention_mask: expected shape"),
    (dict(attention_mask=np.array([[1, 1, 0, 0], [1, 1, 1, 1]])), ValueError, "LEFT padding"),
    (dict(attention_mask=np.array([[0, 0, 0, 0], [1, 1, 1, 1]])), ValueError, "row 0 has no tokens"),
    (dict(attention_mask=np.array([[2, 1, 1, 1], [1, 1, 1, 1]])), ValueError, "expected 1 .real token. or 0"),
    (dict(repetition_penalty=0.0), ValueError, "repetition_penalty"),
    (dict(repetition_penalty=-1.0), ValueError, "repetition_penalty"),
    (dict(repetition_penalty=float("nan")), ValueError, "repetition_penalty"),
    (dict(eos_token_id=V), IndexError, "eos_token_id: token id 211 is out of range"),
    (dict(eos_token_id=[1, -1]), IndexError, "eos_token_id"),
    (dict(eos_token_id="a"), TypeError, "eos_token_id"),
    (dict(pad_token_id=V + 5), IndexError, "pad_token_id"),
    (dict(min_new_tokens=-1), ValueError, "min_new_tokens"),
    (dict(streamer=3), TypeError, "streamer"),
])
def test_bad_arguments_raise_clear_errors(model, kw, err, match):
    ids = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    with pytest.raises(err, match=match):
        model.generate(ids, 4, **kw)
    if "streamer" not in kw:
        with pytest.raises(err, match=match):
            model.generate_stream(ids, 4, **kw)  # checked at the call, not at the first step


def test_ids_out_of_range_at_real_positions(model):
    ids = np.array([[0, 3, V], [1, 2, 3]])
    with pytest.raises(IndexError, match=r"idx: token id 211 at \[0, 2\]"):
        model.generate(ids, 2, attention_mask=np.array([[0, 1, 1], [1, 1, 1]]))


def test_padding_needs_full_attention():
    m = make_model(attention="sliding_window", attention_window=4)
    ids, mask, _ = padded([2, 5])
    with pytest.raises(ValueError, match='attention="full"'):
        m.generate(ids, 3, attention_mask=mask)
    m.generate(ids, 3, attention_mask=np.ones_like(ids))  # no padding: fine
