"""BigBird inside the models: GPT/BERT configs with attention="bigbird" agree
with full attention when the layout covers everything, depend on exactly the
positions cf.functional.bigbird_layout makes visible, train, match finite
differences, generate with a KV cache equal to full recompute (past the
context too), and round-trip through checkpoints with the same layout."""
import json

import numpy as np
import pytest

import cpuformer as cf
from helpers import fit_batch, generate_by_recompute, loss_fd_check, tiny_gpt_config

F = cf.functional
BB = dict(attention="bigbird", bigbird_block_size=4, num_window_blocks=1, num_global_blocks=1, num_random_blocks=2,
          bigbird_seed=7)


def gpt_config(**kw):
    return tiny_gpt_config(**{"block_size": 40, "n_embd": 16, **kw})


def bert_config(**kw):
    base = dict(vocab_size=29, max_position_embeddings=48, type_vocab_size=2, n_layer=2, n_head=2, hidden_size=16,
                intermediate_size=32, dropout=0.0)
    base.update(kw)
    return cf.BERTConfig(**base)


def copy_weights(src, dst):
    dst.load_state_dict(dict(src.state_dict()), strict=False)


def visible(T, cfg, causal):
    """[T, T] bool: key j visible to query i under the config's layout."""
    bs = cfg.bigbird_block_size
    L = F.bigbird_layout(T, bs, cfg.num_window_blocks, cfg.num_global_blocks, cfg.num_random_blocks,
                         seed=cfg.bigbird_seed, is_causal=causal) if T > 0 else None
    blk = np.arange(T) // bs
    m = L[blk[:, None], blk[None, :]]
    if causal:
        m &= np.arange(T)[None, :] <= np.arange(T)[:, None]
    return m


def lenient_layout(T, cfg, causal):
    # The models are not strict: short sequences take the random blocks they have.
    try:
        return visible(T, cfg, causal)
    except ValueError:
        pytest.fail("choose a length with enough candidate blocks")


# ---------------------------------------------------------------------------
# GPT
def test_gpt_covering_layout_equals_full_attention(rng):
    full = cf.GPT(gpt_config())
    bb = cf.GPT(gpt_config(attention="bigbird", bigbird_block_size=8, num_window_blocks=11, num_global_blocks=0,
                           num_random_blocks=0))  # trailing window of 11 blocks: the whole causal past
    copy_weights(full, bb)
    idx = rng.integers(0, 23, (2, 37))
    np.testing.assert_allclose(bb(idx), full(idx), rtol=1e-5, atol=1e-5)
    for m in (full, bb):
        m.zero_grad()
        m.loss(idx[:, :-1], idx[:, 1:])
        m.backward()
    gf, gb = full.gradients(), bb.gradients()
    for name in gf:
        np.testing.assert_allclose(gb[name], gf[name], rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("family", ["gpt", "bert"])
def test_one_layer_depends_on_exactly_the_visible_positions(rng, family):
    """With one layer, the output at i changes when token j changes iff i == j or
    j is visible to i under the layout (window, global, random blocks)."""
    T = 37  # 10 blocks of 4, the last partial
    if family == "gpt":
        cfg = gpt_config(n_layer=1, **BB)
        m = cf.GPT(cfg)
        run = m
    else:
        cfg = bert_config(n_layer=1, **BB)
        m = cf.BERT(cfg)
        run = m.mlm_logits
    vis = lenient_layout(T, cfg, causal=family == "gpt")
    assert 0.2 < vis.mean() < 0.8  # a real mix of visible and hidden pairs
    idx = rng.integers(3, 23, (1, T))
    base = run(idx)
    for j in range(T):
        idx2 = idx.copy()
        idx2[0, j] = 3 + (idx2[0, j] - 3 + 5) % 20
        changed = np.any(run(idx2) != base, axis=-1)[0]
        want = vis[:, j].copy()
        want[j] = True
        np.testing.assert_array_equal(changed, want, err_msg=f"token {j}")


def test_gpt_bigbird_memorises_a_batch(rng):
    cf.manual_seed(0)
    m = cf.GPT(gpt_config(vocab_size=17, block_size=24, n_embd=32, n_head=4, **BB))
    idx = rng.integers(0, 17, (4, 24))
    first, last = fit_batch(m, idx[:, :-1], idx[:, 1:], steps=150, lr=1e-2)
    assert first > 2.0 and last < 0.3, (first, last)


def test_gpt_gradients_match_finite_differences(rng):
    cf.manual_seed(1)
    m = cf.GPT(gpt_config(n_layer=1, **BB))
    idx = rng.integers(0, 23, (2, 30))
    loss_fd_check(m, lambda: m.loss(idx[:, :-1], idx[:, 1:]), ["h.0.self_attn.in_proj_weight"], rng)


@pytest.mark.parametrize("kw", [BB, dict(BB, num_window_blocks=2, num_global_blocks=0, num_random_blocks=1),
                                dict(BB, bigbird_block_size=3, num_window_blocks=0, num_random_blocks=3)])
def test_greedy_generation_equals_full_recompute(rng, kw):
    cfg = gpt_config(block_size=20, **kw)
    cf.manual_seed(4)
    m = cf.GPT(cfg)
    data = rng.integers(0, cfg.vocab_size, (4, 20))
    fit_batch(m, data[:, :-1], data[:, 1:], steps=40, lr=1e-2)  # peaked, position-dependent predictions
    prompt = rng.integers(0, cfg.vocab_size, (2, 5))
    out = m.generate(prompt, max_new_tokens=30, temperature=0.0)  # past block_size: the cropping path too
    assert len(np.unique(out[:, 5:])) > 3
    np.testing.assert_array_equal(out, generate_by_recompute(m, prompt, 30, cfg.block_size))
    # the layout matters: full attention on the same weights predicts otherwise
    full = cf.GPT(gpt_config(block_size=20))
    copy_weights(m, full)
    assert np.max(np.abs(full(out[:, -20:]) - m(out[:, -20:]))) > 1e-2


def test_gpt_bf16_autocast_runs_close_to_float32(rng):
    m = cf.GPT(gpt_config(**BB))
    idx = rng.integers(0, 23, (2, 33))
    ref = m(idx)
    with cf.autocast("bfloat16"):
        got = m(idx)
    assert np.max(np.abs(got - ref)) < 0.05 * np.max(np.abs(ref)) + 0.05


def test_gpt_checkpoint_records_the_layout(tmp_path, rng):
    m = cf.GPT(gpt_config(**BB))
    loaded = cf.load(m.save(tmp_path / "bb.safetensors"))
    for f in ("attention", "bigbird_block_size", "num_window_blocks", "num_global_blocks", "num_random_blocks",
              "bigbird_seed"):
        assert getattr(loaded.config, f) == getattr(m.config, f), f
    idx = rng.integers(0, 23, (2, 40))
    np.testing.assert_array_equal(loaded(idx), m(idx))
    np.testing.assert_array_equal(visible(40, loaded.config, True), visible(40, m.config, True))
    # another seed is another layout, so other logits
    other = cf.GPT(gpt_config(**dict(BB, bigbird_seed=8)))
    copy_weights(m, other)
    assert not np.array_equal(visible(40, other.config, True), visible(40, m.config, True))
    assert not np.allclose(other(idx), m(idx))
    # configs written before these fields existed still load (defaults)
    old = {k: v for k, v in gpt_config().to_dict().items() if "bigbird" not in k and "blocks" not in k}
    assert cf.GPTConfig(**json.loads(json.dumps(old))).num_random_blocks == 3


def test_bad_bigbird_fields():
    for f, v in (("bigbird_block_size", 0), ("num_window_blocks", -1), ("num_global_blocks", -1),
                 ("num_random_blocks", -2)):
        with pytest.raises(ValueError, match=f):
            gpt_config(**dict(BB, **{f: v}))
        with pytest.raises(ValueError, match=f):
            bert_config(**dict(BB, **{f: v}))
    with pytest.raises(TypeError, match="bigbird_block_size"):
        gpt_config(**dict(BB, bigbird_block_size=4.0))
    core = cf._core.GPTConfigCore()
    for k, v in gpt_config(**BB).to_dict().items():
        setattr(core, k, v)
    core.num_random_blocks = -1  # the C++ check, past the dataclass
    with pytest.raises(ValueError, match="num_random_blocks"):
        cf._core.GPT(core)


# ---------------------------------------------------------------------------
# BERT
def mlm_batch(rng, B=4, T=30, V=29):
    ids = rng.integers(3, V, (B, T))
    labels = np.where(rng.random((B, T)) < 0.3, ids, -100)
    inputs = np.where(labels >= 0, 2, ids)
    attn = np.ones((B, T), np.int64)
    attn[0, -5:] = 0
    return inputs, labels, attn


def test_bert_bigbird_trains_and_round_trips(rng, tmp_path):
    cf.manual_seed(0)
    m = cf.BERT(bert_config(**BB))
    inputs, labels, attn = mlm_batch(rng)
    opt = cf.optim.AdamW(m, lr=5e-3, weight_decay=0.0)
    first = m.mlm_loss(inputs, labels, attention_mask=attn)
    for _ in range(120):
        opt.zero_grad()
        m.mlm_loss(inputs, labels, attention_mask=attn)
        m.backward()
        opt.step()
    last = m.mlm_loss(inputs, labels, attention_mask=attn)
    assert first > 2.5 and last < 0.5 * first, (first, last)
    loaded = cf.load(m.save(tmp_path / "bb.safetensors"))
    assert loaded.config.attention == "bigbird" and loaded.config.bigbird_seed == 7
    np.testing.assert_array_equal(loaded.mlm_logits(inputs, attention_mask=attn),
                                  m.mlm_logits(inputs, attention_mask=attn))


def test_bert_gradients_match_finite_differences(rng):
    cf.manual_seed(3)
    m = cf.BERT(bert_config(n_layer=1, **BB))
    inputs, labels, attn = mlm_batch(rng, T=26)
    loss_fd_check(m, lambda: m.mlm_loss(inputs, labels, attention_mask=attn),
                  ["encoder.layers.0.self_attn.in_proj_weight"], rng)


def test_bert_covering_layout_equals_full(rng):
    full = cf.BERT(bert_config())
    bb = cf.BERT(bert_config(attention="bigbird", bigbird_block_size=4, num_window_blocks=20, num_global_blocks=0,
                             num_random_blocks=0))
    copy_weights(full, bb)
    inputs, _, attn = mlm_batch(rng)
    np.testing.assert_allclose(bb.mlm_logits(inputs, attention_mask=attn),
                               full.mlm_logits(inputs, attention_mask=attn), rtol=1e-5, atol=1e-5)
