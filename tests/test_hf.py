"""Hugging Face checkpoints: cpuformer.from_pretrained / save_pretrained against
transformers' own BERT, GPT-2 and ViT (small random models written with
save_pretrained into temp dirs; no downloads), fine-tuning against PyTorch,
and the errors for what is not supported."""
import json
import os
import sys
import warnings

import numpy as np
import pytest

import cpuformer as cf
import cpuformer.io as cfio
from helpers import rel_err

TOL = 1e-4  # relative, float32 end to end


def check(actual, expected, what, tol=TOL):
    err = rel_err(actual, expected)
    print(f"[hf] {what}: max relative difference {err:.2e}")
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:.3g}"


@pytest.fixture
def hf():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    return torch, transformers


def bert_cfg(transformers, **kw):
    base = dict(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                max_position_embeddings=24, type_vocab_size=2, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0)
    base.update(kw)
    return transformers.BertConfig(**base)


def gpt2_cfg(transformers, **kw):
    base = dict(vocab_size=67, n_positions=24, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
                attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    base.update(kw)
    return transformers.GPT2Config(**base)


def vit_cfg(transformers, **kw):
    base = dict(image_size=12, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                num_attention_heads=4, intermediate_size=48, num_labels=5)
    base.update(kw)
    return transformers.ViTConfig(**base)


def save_hf(model, path):
    model.save_pretrained(str(path))
    return str(path)


def randomize(torch, model):
    """Non-trivial LayerNorm affine and biases (fresh HF models have 1/0 there)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layernorm" in name or ".ln_" in name or "bias" in name:
                p.add_(0.1 * torch.randn_like(p))


def padded_batch(rng, vocab, B=3, T=9):
    ids = rng.integers(0, vocab, (B, T))
    types = rng.integers(0, 2, (B, T))
    mask = np.ones((B, T), np.int64)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    return ids, types, mask


# ---------------------------------------------------------------- BERT ----

@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu"])
def test_bert_mlm_logits_match_transformers_on_padded_batches(hf, tmp_path, rng, act):
    torch, transformers = hf
    ref = transformers.BertForMaskedLM(bert_cfg(transformers, hidden_act=act, layer_norm_eps=1e-6)).eval()
    randomize(torch, ref)
    m = cf.from_pretrained(save_hf(ref, tmp_path))
    assert isinstance(m, cf.BERT) and m.config.mlm_head and not m.config.pooler and not m.training
    assert m.config.layer_norm_eps == pytest.approx(1e-6)
    ids, types, mask = padded_batch(rng, 61)
    with torch.no_grad():
        out = ref(torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types))
    check(m.mlm_logits(ids, types, mask), out.logits.numpy(), f"BertForMaskedLM({act}) logits, padded")


def test_bert_model_hidden_states_and_pooler_match_transformers(hf, tmp_path, rng):
    torch, transformers = hf
    ref = transformers.BertModel(bert_cfg(transformers)).eval()  # saved without the "bert." prefix
    randomize(torch, ref)
    m = cf.from_pretrained(save_hf(ref, tmp_path))
    assert not m.config.mlm_head and m.config.pooler
    ids, types, mask = padded_batch(rng, 61)
    with torch.no_grad():
        out = ref(torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types))
    check(m(ids, types, mask), out.last_hidden_state.numpy(), "BertModel last_hidden_state, padded")
    check(m.pooled_output(ids, types, mask), out.pooler_output.numpy(), "BertModel pooler_output, padded")
    with pytest.raises(RuntimeError, match="no MLM head"):
        m.mlm_logits(ids)


def test_bert_pooled_backward_matches_torch_gradients(hf, tmp_path, rng):
    torch, transformers = hf
    ref = transformers.BertModel(bert_cfg(transformers)).eval()
    randomize(torch, ref)
    m = cf.from_pretrained(save_hf(ref, tmp_path))
    ids, types, mask = padded_batch(rng, 61)
    g = rng.standard_normal((3, 32)).astype(np.float32)
    out = ref(torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types))
    (out.pooler_output * torch.tensor(g)).sum().backward()
    m.zero_grad()
    m.pooled_output(ids, types, mask)
    m.backward(grad_pooled=g)
    grads = m.gradients()
    pairs = {"pooler.dense.weight": ref.pooler.dense.weight,
             "encoder.layers.1.linear2.weight": ref.encoder.layer[1].output.dense.weight,
             "embeddings.word_embeddings.weight": ref.embeddings.word_embeddings.weight}
    for ours, p in pairs.items():
        check(grads[ours], p.grad.numpy(), f"BertModel pooled backward: d/d {ours}", tol=1e-3)


def test_bert_for_pretraining_keeps_mlm_and_pooler_and_reports_the_nsp_head(hf, tmp_path, rng):
    torch, transformers = hf
    ref = transformers.BertForPreTraining(bert_cfg(transformers)).eval()
    randomize(torch, ref)
    with pytest.warns(UserWarning, match="cls.seq_relationship"):
        m = cf.from_pretrained(save_hf(ref, tmp_path))
    assert m.config.mlm_head and m.config.pooler
    ids, types, mask = padded_batch(rng, 61)
    with torch.no_grad():
        out = ref(torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types))
    check(m.mlm_logits(ids, types, mask), out.prediction_logits.numpy(), "BertForPreTraining MLM logits")


# --------------------------------------------------------------- GPT-2 ----

@pytest.mark.parametrize("kw", [{}, {"activation_function": "gelu", "n_inner": 40, "layer_norm_epsilon": 1e-6},
                                {"activation_function": "relu"}, {"reorder_and_upcast_attn": True}])
def test_gpt2_logits_match_transformers(hf, tmp_path, rng, kw):
    torch, transformers = hf
    ref = transformers.GPT2LMHeadModel(gpt2_cfg(transformers, **kw)).eval()
    randomize(torch, ref)
    m = cf.from_pretrained(save_hf(ref, tmp_path))
    assert isinstance(m, cf.GPT) and m.config.n_inner == kw.get("n_inner", 0)
    ids = rng.integers(0, 67, (2, 11))
    with torch.no_grad():
        expected = ref(torch.tensor(ids)).logits.numpy()
    check(m(ids), expected, f"GPT2LMHeadModel{kw} logits")


def test_gpt2_attention_mask_matches_transformers_with_left_padding(hf, tmp_path, rng):
    torch, transformers = hf
    ref = transformers.GPT2LMHeadModel(gpt2_cfg(transformers)).eval()
    m = cf.from_pretrained(save_hf(ref, tmp_path))
    ids = rng.integers(0, 67, (2, 10))
    mask = np.ones((2, 10), np.int64)
    mask[0, :4] = 0  # left padding
    with torch.no_grad():
        expected = ref(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    got = m(ids, attention_mask=mask)
    check(got[0, 4:], expected[0, 4:], "GPT2 logits of real tokens, left-padded row")
    check(got[1], expected[1], "GPT2 logits, unpadded row")
    with pytest.raises(ValueError, match="attention_mask"):
        m(ids, attention_mask=mask[:, :5])
    with pytest.raises(ValueError, match="attention_mask"):
        m(ids, attention_mask=mask * 2)


def test_gpt2_fine_tuning_matches_pytorch_adamw_loss_trajectory(hf, tmp_path, rng):
    torch, transformers = hf
    ref = transformers.GPT2LMHeadModel(gpt2_cfg(transformers)).train()
    m = cf.from_pretrained(save_hf(ref, tmp_path))
    data = [rng.integers(0, 67, (4, 13)) for _ in range(5)]
    hp = dict(lr=3e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    opt = torch.optim.AdamW(ref.parameters(), **hp)
    torch_losses = []
    for x in data:
        xt = torch.tensor(x)
        logits = ref(xt[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 67), xt[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        torch_losses.append(loss.item())
    history = cf.fit(m, cf.optim.AdamW(m, **hp), [(x[:, :-1], x[:, 1:]) for x in data], progress=False)
    check(history["loss"], torch_losses, "GPT-2 fine-tuning, 5 AdamW steps: loss trajectory")
    assert torch_losses[-1] < torch_losses[0]
    # The trained weights agree too, and go back to transformers intact.
    out = save_hf_roundtrip = cf.save_pretrained(m, tmp_path / "tuned")
    back = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    ref.eval()
    with torch.no_grad():
        x = torch.tensor(data[0])
        check(back(x).logits.numpy(), ref(x).logits.numpy(), "GPT-2 after 5 steps: cpuformer vs torch logits",
              tol=1e-3)
    assert save_hf_roundtrip == str(tmp_path / "tuned")


# ----------------------------------------------------------------- ViT ----

@pytest.mark.parametrize("act", ["gelu", "gelu_new"])
def test_vit_logits_match_transformers(hf, tmp_path, rng, act):
    torch, transformers = hf
    ref = transformers.ViTForImageClassification(vit_cfg(transformers, hidden_act=act, layer_norm_eps=1e-6)).eval()
    randomize(torch, ref)
    m = cf.from_pretrained(save_hf(ref, tmp_path))
    assert isinstance(m, cf.ViT) and m.config.num_classes == 5
    x = rng.standard_normal((3, 3, 12, 12)).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.tensor(x)).logits.numpy()
    check(m(x), expected, f"ViTForImageClassification({act}) logits")


# ---------------------------------------------------------- round trips ----

def test_native_models_save_pretrained_load_in_transformers(hf, tmp_path, rng):
    torch, transformers = hf
    cases = [
        (cf.GPT(cf.GPTConfig(vocab_size=41, block_size=16, n_layer=2, n_head=2, n_embd=16, activation="gelu",
                             n_inner=24)), transformers.GPT2LMHeadModel),
        (cf.BERT(cf.BERTConfig(41, 16, 2, 2, 2, 16, 24, dropout=0.0, activation="gelu_tanh")),
         transformers.BertForMaskedLM),
        (cf.BERT(cf.BERTConfig(41, 16, 2, 2, 2, 16, 24, dropout=0.0, mlm_head=False, pooler=True)),
         transformers.BertModel),
        (cf.ViT(cf.ViTConfig(8, 4, 3, 4, 16, 2, 2, 24)), transformers.ViTForImageClassification),
    ]
    for k, (m, hf_cls) in enumerate(cases):
        for v in m.parameters().values():  # move LayerNorm/bias values away from 1/0
            v += 0.05 * rng.standard_normal(v.shape).astype(np.float32)
        m.eval()
        d = m.save_pretrained(tmp_path / f"m{k}")
        back = hf_cls.from_pretrained(d).eval()
        name = type(m).__name__
        with torch.no_grad():
            if isinstance(m, cf.ViT):
                x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
                check(m(x), back(torch.tensor(x)).logits.numpy(), "ViT save_pretrained -> transformers logits")
                continue
            ids = rng.integers(0, 41, (2, 7))
            if isinstance(m, cf.GPT):
                check(m(ids), back(torch.tensor(ids)).logits.numpy(), "GPT save_pretrained -> transformers logits")
            elif m.config.mlm_head:
                check(m.mlm_logits(ids), back(torch.tensor(ids)).logits.numpy(),
                      f"{name} save_pretrained -> BertForMaskedLM logits")
            else:
                out = back(torch.tensor(ids))
                check(m(ids), out.last_hidden_state.numpy(), "BERT save_pretrained -> BertModel hidden")
                check(m.pooled_output(ids), out.pooler_output.numpy(), "BERT save_pretrained -> BertModel pooler")
        # ... and cpuformer reads its own export back exactly.
        again = cf.from_pretrained(d)
        for key, value in m.parameters().items():
            np.testing.assert_array_equal(again.parameters()[key], value, err_msg=key)


def test_round_trip_keeps_the_original_config_and_tokenizer_files(hf, tmp_path):
    torch, transformers = hf
    ref = transformers.ViTForImageClassification(
        vit_cfg(transformers, num_labels=3, id2label={0: "cat", 1: "dog", 2: "eel"},
                label2id={"cat": 0, "dog": 1, "eel": 2}))
    src = save_hf(ref, tmp_path / "src")
    with open(os.path.join(src, "preprocessor_config.json"), "w") as f:
        json.dump({"do_resize": False}, f)
    out = cf.from_pretrained(src).save_pretrained(tmp_path / "out")
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["id2label"] == {"0": "cat", "1": "dog", "2": "eel"} and cfg["architectures"] == [
        "ViTForImageClassification"]
    assert os.path.isfile(os.path.join(out, "preprocessor_config.json"))
    assert transformers.ViTForImageClassification.from_pretrained(out).config.id2label[1] == "dog"


# ---------------------------------------------------- other file layouts ----

def test_pytorch_model_bin_and_sharded_safetensors(hf, tmp_path, rng):
    torch, transformers = hf
    ref = transformers.BertForMaskedLM(bert_cfg(transformers)).eval()
    d = save_hf(ref, tmp_path / "bin")
    os.remove(os.path.join(d, "model.safetensors"))
    torch.save(ref.state_dict(), os.path.join(d, "pytorch_model.bin"))  # includes the tied decoder weight
    ids = rng.integers(0, 61, (2, 6))
    with torch.no_grad():
        expected = ref(torch.tensor(ids)).logits.numpy()
    check(cf.from_pretrained(d).mlm_logits(ids), expected, "BERT from pytorch_model.bin")
    sharded = str(tmp_path / "sharded")
    ref.save_pretrained(sharded, max_shard_size="20KB")
    assert os.path.isfile(os.path.join(sharded, "model.safetensors.index.json"))
    check(cf.from_pretrained(sharded).mlm_logits(ids), expected, "BERT from sharded safetensors")


def test_gpt2_legacy_layout_without_prefix_and_with_mask_buffers(hf, tmp_path, rng):
    torch, transformers = hf
    ref = transformers.GPT2LMHeadModel(gpt2_cfg(transformers)).eval()
    d = save_hf(ref, tmp_path)
    t = cfio.load_file(os.path.join(d, "model.safetensors"))
    legacy = {k[len("transformer."):]: v for k, v in t.items()}
    legacy["h.0.attn.bias"] = np.tril(np.ones((24, 24), np.float32))[None, None]
    legacy["lm_head.weight"] = legacy["wte.weight"]
    cfio.save_file(legacy, os.path.join(d, "model.safetensors"))
    ids = rng.integers(0, 67, (1, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the known buffers are not reported
        m = cf.from_pretrained(d)
    with torch.no_grad():
        check(m(ids), ref(torch.tensor(ids)).logits.numpy(), "GPT-2 legacy layout")
    legacy["lm_head.weight"] = legacy["wte.weight"] + 1
    cfio.save_file(legacy, os.path.join(d, "model.safetensors"))
    with pytest.raises(NotImplementedError, match="tie_word_embeddings"):
        cf.from_pretrained(d)


# -------------------------------------- errors (no transformers needed) ----

def write_dir(path, config, tensors=None):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    if tensors is not None:
        cfio.save_file(tensors, os.path.join(path, "model.safetensors"))
    return str(path)


def test_missing_directory_and_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        cf.from_pretrained("bert-base-uncased-not-a-local-dir")
    with pytest.raises(FileNotFoundError, match="config.json"):
        cf.from_pretrained(tmp_path)
    d = write_dir(tmp_path / "noweights", {"model_type": "gpt2"})
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        cf.from_pretrained(d)
    with pytest.raises(TypeError, match="path"):
        cf.from_pretrained(3)


def test_pytorch_model_bin_without_torch_says_so(tmp_path, monkeypatch):
    d = write_dir(tmp_path, {"model_type": "gpt2"})
    open(os.path.join(d, "pytorch_model.bin"), "wb").close()
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="needs torch"):
        cf.from_pretrained(d)


@pytest.mark.parametrize("config, match", [
    ({"model_type": "roberta"}, "model_type 'roberta'"),
    ({"model_type": "gpt2", "scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
    ({"model_type": "gpt2", "activation_function": "silu"}, "activation_function='silu'"),
    ({"model_type": "gpt2", "add_cross_attention": True}, "add_cross_attention"),
    ({"model_type": "bert", "position_embedding_type": "relative_key"}, "position_embedding_type"),
    ({"model_type": "bert", "is_decoder": True}, "is_decoder"),
    ({"model_type": "vit", "qkv_bias": False}, "qkv_bias"),
    ({"model_type": "vit", "image_size": [224, 160]}, "image_size"),
])
def test_unsupported_architectures_and_options_are_named(tmp_path, config, match):
    tensors = {"classifier.weight": np.zeros((2, 8), np.float32), "wte.weight": np.zeros((4, 8), np.float32)}
    d = write_dir(tmp_path, config, tensors)
    with pytest.raises(NotImplementedError, match=match):
        cf.from_pretrained(d)


def test_missing_and_misshapen_tensors_are_named(tmp_path):
    cfg = {"model_type": "gpt2", "vocab_size": 5, "n_positions": 4, "n_embd": 8, "n_layer": 1, "n_head": 2}
    m = cf.GPT(cf.GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=8))
    d = m.save_pretrained(tmp_path / "ok")
    t = cfio.load_file(os.path.join(d, "model.safetensors"))
    del t["transformer.h.0.mlp.c_fc.bias"]
    write_dir(tmp_path / "missing", cfg, t)
    with pytest.raises(ValueError, match="transformer.h.0.mlp.c_fc.bias"):
        cf.from_pretrained(tmp_path / "missing")
    t["transformer.h.0.mlp.c_fc.bias"] = np.zeros(7, np.float32)
    write_dir(tmp_path / "shape", cfg, t)
    with pytest.raises(ValueError, match="c_fc.bias.*does not match"):
        cf.from_pretrained(tmp_path / "shape")
    with pytest.raises(ValueError, match="dropout"):
        cf.from_pretrained(d, dropout=1.5)


def test_save_pretrained_rejects_what_transformers_cannot_express(tmp_path):
    with pytest.raises(NotImplementedError, match="bias=False"):
        cf.GPT(cf.GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=8, bias=False)).save_pretrained(
            tmp_path)
    with pytest.raises(NotImplementedError, match="Seq2Seq"):
        cf.save_pretrained(cf.Seq2Seq(cf.Seq2SeqConfig(5, 5, d_model=8, nhead=2, num_encoder_layers=1,
                                                       num_decoder_layers=1, dim_feedforward=8)), tmp_path)
    # GPT-2 and BERT checkpoints compute full attention: a long-sequence variant would change the outputs
    for attention in ("sliding_window", "bigbird", "performer"):
        with pytest.raises(NotImplementedError, match=f"attention='{attention}'"):
            cf.GPT(cf.GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=8,
                                attention=attention)).save_pretrained(tmp_path)
        with pytest.raises(NotImplementedError, match=f"attention='{attention}'"):
            cf.BERT(cf.BERTConfig(5, 4, 1, 1, 2, 8, 8, attention=attention)).save_pretrained(tmp_path)


def test_new_config_fields_validate_and_round_trip_through_cf_save(tmp_path):
    with pytest.raises(ValueError, match="activation"):
        cf.GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=8, activation="swish")
    with pytest.raises(ValueError, match="n_inner"):
        cf.GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=8, n_inner=-1)
    with pytest.raises(ValueError, match="activation"):
        cf.BERTConfig(5, 4, 1, 1, 2, 8, 8, activation="tanh")
    m = cf.BERT(cf.BERTConfig(5, 4, 1, 1, 2, 8, 8, activation="relu", mlm_head=False, pooler=True))
    assert "mlm.bias" not in m.parameters() and "pooler.dense.weight" in m.parameters()
    back = cf.load(m.save(tmp_path / "b.safetensors"))
    assert back.config == m.config
    g = cf.GPT(cf.GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=8, activation="relu",
                            n_inner=12, layer_norm_eps=1e-6))
    assert g.parameters()["h.0.linear1.weight"].shape == (12, 8)
    assert cf.load(g.save(tmp_path / "g.safetensors")).config == g.config
    with pytest.raises(RuntimeError, match="no pooler"):
        cf.BERT(cf.BERTConfig(5, 4, 1, 1, 2, 8, 8)).pooled_output(np.zeros((1, 3), np.int64))
