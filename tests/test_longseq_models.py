"""Long-sequence attention inside the models: GPT/BERT configs with
attention="sliding_window" | "performer" | "linformer" train, agree with full
attention where they must, match finite differences, generate with a
windowed KV cache, and round-trip through checkpoints."""
import json

import numpy as np
import pytest

import cpuformer as cf
from helpers import fit_batch, generate_by_recompute, loss_fd_check, tiny_gpt_config


def gpt_config(**kw):
    """tiny_gpt_config with a longer block (24) and width 16, room for windows and features."""
    return tiny_gpt_config(**{"block_size": 24, "n_embd": 16, **kw})


def bert_config(**kw):
    base = dict(vocab_size=29, max_position_embeddings=32, type_vocab_size=2, n_layer=2, n_head=2, hidden_size=16,
                intermediate_size=32, dropout=0.0)
    base.update(kw)
    return cf.BERTConfig(**base)


def copy_weights(src, dst):
    dst.load_state_dict({k: v for k, v in src.state_dict().items()}, strict=False)


# ---------------------------------------------------------------------------
# GPT
@pytest.mark.parametrize("num_global", [0, 2])
def test_gpt_wide_window_equals_full_attention(rng, num_global):
    full = cf.GPT(gpt_config())
    win = cf.GPT(gpt_config(attention="sliding_window", attention_window=23, num_global=num_global))
    copy_weights(full, win)
    idx = rng.integers(0, 23, (2, 24))
    np.testing.assert_allclose(win(idx), full(idx), rtol=1e-5, atol=1e-5)
    for m in (full, win):
        m.zero_grad()
        m.loss(idx[:, :-1], idx[:, 1:])
        m.backward()
    gf, gw = full.gradients(), win.gradients()
    for name in gf:
        np.testing.assert_allclose(gw[name], gf[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_gpt_sliding_window_is_local(rng):
    """One layer, window 3: the logits at position t ignore tokens before t - 3."""
    m = cf.GPT(gpt_config(n_layer=1, attention="sliding_window", attention_window=3))
    idx = rng.integers(0, 23, (1, 20))
    a = m(idx)
    idx2 = idx.copy()
    idx2[0, 5] = (idx2[0, 5] + 1) % 23
    b = m(idx2)
    changed = np.nonzero(np.any(a != b, axis=-1)[0])[0]
    assert changed.min() == 5 and changed.max() == 8, changed


@pytest.mark.parametrize("kw", [dict(attention="sliding_window", attention_window=4, num_global=1),
                                dict(attention="performer", num_features=32)])
def test_gpt_variant_memorises_a_batch(rng, kw):
    cf.manual_seed(0)
    m = cf.GPT(gpt_config(vocab_size=17, block_size=12, n_embd=32, n_head=4, **kw))
    idx = rng.integers(0, 17, (4, 12))
    first, last = fit_batch(m, idx[:, :-1], idx[:, 1:], steps=150, lr=1e-2)
    assert first > 2.0 and last < 0.2, (first, last)


def test_gpt_performer_gradients_match_finite_differences(rng):
    cf.manual_seed(1)
    m = cf.GPT(gpt_config(n_layer=1, attention="performer", num_features=16))
    idx = rng.integers(0, 23, (2, 20))
    loss_fd_check(m, lambda: m.loss(idx[:, :-1], idx[:, 1:]), ["h.0.self_attn.in_proj_weight"], rng)


@pytest.mark.parametrize("kw", [dict(attention="sliding_window", attention_window=3, num_global=0),
                                dict(attention="sliding_window", attention_window=2, num_global=2),
                                dict(attention="sliding_window", attention_window=0),
                                dict(attention="performer", num_features=64)])
def test_greedy_generation_equals_full_recompute(rng, kw):
    cfg = gpt_config(block_size=10, **kw)
    m = cf.GPT(cfg)
    prompt = rng.integers(0, cfg.vocab_size, (2, 3))
    out = m.generate(prompt, max_new_tokens=14, temperature=0.0)  # past block_size: the cropping path too
    np.testing.assert_array_equal(out, generate_by_recompute(m, prompt, 14, cfg.block_size))


def test_gpt_rejects_linformer_and_bad_fields():
    with pytest.raises(ValueError, match="linformer.*causal"):
        gpt_config(attention="linformer")
    with pytest.raises(ValueError, match="attention"):
        gpt_config(attention="sparse")
    with pytest.raises(ValueError, match="attention_window"):
        gpt_config(attention="sliding_window", attention_window=-1)
    with pytest.raises(ValueError, match="num_global"):
        gpt_config(attention="sliding_window", num_global=-2)
    with pytest.raises(ValueError, match="num_features"):
        gpt_config(attention="performer", num_features=0)
    with pytest.raises(TypeError, match="attention_window"):
        gpt_config(attention_window=2.5)
    core = cf._core.GPTConfigCore()
    for k, v in gpt_config().to_dict().items():
        setattr(core, k, v)
    core.attention = "linformer"  # the C++ check, past the dataclass
    with pytest.raises(ValueError, match="linformer"):
        cf._core.GPT(core)


def test_gpt_checkpoint_records_attention(tmp_path, rng):
    m = cf.GPT(gpt_config(attention="sliding_window", attention_window=5, num_global=1))
    path = m.save(tmp_path / "win.safetensors")
    loaded = cf.load(path)
    assert loaded.config.attention == "sliding_window" and loaded.config.attention_window == 5
    assert loaded.config.num_global == 1
    idx = rng.integers(0, 23, (1, 24))
    np.testing.assert_array_equal(loaded(idx), m(idx))
    # A config written before these fields existed still loads (defaults: full attention).
    old = {k: v for k, v in gpt_config().to_dict().items()
           if k not in ("attention", "attention_window", "num_global", "num_features", "linformer_k")}
    assert cf.GPTConfig(**json.loads(json.dumps(old))).attention == "full"


# ---------------------------------------------------------------------------
# BERT
def mlm_batch(rng, B=4, T=20, V=29):
    ids = rng.integers(3, V, (B, T))
    labels = np.where(rng.random((B, T)) < 0.3, ids, -100)
    inputs = np.where(labels >= 0, 2, ids)  # token 2 = [MASK]
    attn = np.ones((B, T), np.int64)
    attn[0, -5:] = 0  # padding in one row
    return inputs, labels, attn


@pytest.mark.parametrize("kw", [dict(attention="sliding_window", attention_window=4, num_global=1),
                                dict(attention="performer", num_features=32),
                                dict(attention="linformer", linformer_k=8)])
def test_bert_variant_trains(rng, kw):
    cf.manual_seed(0)
    m = cf.BERT(bert_config(**kw))
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


def test_bert_linformer_parameters_and_gradients(rng, tmp_path):
    cf.manual_seed(2)
    m = cf.BERT(bert_config(attention="linformer", linformer_k=6))
    params = m.parameters()
    for l in range(2):
        assert params[f"encoder.layers.{l}.self_attn.linformer_e"].shape == (6, 32)
        assert params[f"encoder.layers.{l}.self_attn.linformer_f"].shape == (6, 32)
    inputs, labels, attn = mlm_batch(rng, T=20)
    loss_fd_check(m, lambda: m.mlm_loss(inputs, labels, attention_mask=attn),
                  ["encoder.layers.0.self_attn.linformer_e", "encoder.layers.1.self_attn.linformer_f",
                   "encoder.layers.0.self_attn.in_proj_weight"], rng)
    # Padding keys take no part: their columns of E/F get no gradient.
    grads = m.gradients()
    assert np.all(grads["encoder.layers.0.self_attn.linformer_e"][:, 20:] == 0)
    loaded = cf.load(m.save(tmp_path / "lin.safetensors"))
    assert loaded.config.attention == "linformer" and loaded.config.linformer_k == 6
    np.testing.assert_array_equal(loaded.mlm_logits(inputs, attention_mask=attn), m.mlm_logits(inputs, attention_mask=attn))
    with pytest.raises(ValueError, match="linformer_k"):
        bert_config(attention="linformer", linformer_k=0)


def test_bert_sliding_window_matches_full_when_window_covers(rng):
    full = cf.BERT(bert_config())
    win = cf.BERT(bert_config(attention="sliding_window", attention_window=40))
    copy_weights(full, win)
    inputs, _, attn = mlm_batch(rng)
    np.testing.assert_allclose(win.mlm_logits(inputs, attention_mask=attn), full.mlm_logits(inputs, attention_mask=attn),
                               rtol=1e-5, atol=1e-5)


def test_bert_performer_gradients_match_finite_differences(rng):
    cf.manual_seed(3)
    m = cf.BERT(bert_config(n_layer=1, attention="performer", num_features=16))
    inputs, labels, attn = mlm_batch(rng, T=12)
    loss_fd_check(m, lambda: m.mlm_loss(inputs, labels, attention_mask=attn),
                  ["encoder.layers.0.self_attn.in_proj_weight"], rng)
