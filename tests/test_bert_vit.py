"""BERT, ViT and mask_tokens: parity with equivalent torch models (float64),
learning, masking statistics, checkpoints, errors."""
import numpy as np
import pytest

import cpuformer as cf
from helpers import assert_close, torch_or_skip

# Special ids of the synthetic BERT vocabulary.
PAD, CLS, SEP, MASK = 0, 1, 2, 3


def bert_config(**kw):
    base = dict(vocab_size=29, max_position_embeddings=16, type_vocab_size=3, n_layer=2, n_head=2, hidden_size=12,
                intermediate_size=20, dropout=0.0)
    base.update(kw)
    return cf.BERTConfig(**base)


def vit_config(**kw):
    base = dict(image_size=6, patch_size=2, num_channels=3, num_classes=5, hidden_size=12, n_layer=2, n_head=2,
                intermediate_size=20)
    base.update(kw)
    return cf.ViTConfig(**base)


# -- torch twins, built from torch.nn parts with cpuformer's parameter names ---------------------

def torch_bert(torch, cfg):
    nn = torch.nn
    F = torch.nn.functional
    H, eps = cfg.hidden_size, cfg.layer_norm_eps

    class Embeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.word_embeddings = nn.Embedding(cfg.vocab_size, H)
            self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, H)
            self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, H)
            self.LayerNorm = nn.LayerNorm(H, eps=eps)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([
                nn.TransformerEncoderLayer(H, cfg.n_head, cfg.intermediate_size, dropout=0.0, activation="gelu",
                                           layer_norm_eps=eps, batch_first=True, norm_first=False)
                for _ in range(cfg.n_layer)])

    class MLMHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(H, H)
            self.LayerNorm = nn.LayerNorm(H, eps=eps)
            self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    class TorchBERT(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = Embeddings()
            self.encoder = Encoder()
            self.mlm = MLMHead()

        def forward(self, ids, token_type_ids=None, attention_mask=None):
            e = self.embeddings
            T = ids.shape[1]
            tt = torch.zeros_like(ids) if token_type_ids is None else token_type_ids
            x = e.word_embeddings(ids) + e.position_embeddings(torch.arange(T)) + e.token_type_embeddings(tt)
            x = e.LayerNorm(x)
            pad = None if attention_mask is None else attention_mask == 0
            for layer in self.encoder.layers:
                x = layer(x, src_key_padding_mask=pad)
            return x

        def mlm_logits(self, h):
            y = self.mlm.LayerNorm(F.gelu(self.mlm.dense(h)))
            return y @ self.embeddings.word_embeddings.weight.T + self.mlm.bias

    return TorchBERT().double().train()


def torch_vit(torch, cfg):
    nn = torch.nn
    F = torch.nn.functional
    H, P, C, eps = cfg.hidden_size, cfg.patch_size, cfg.num_channels, cfg.layer_norm_eps

    class PatchEmbeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.projection = nn.Linear(C * P * P, H)

    class Embeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, H))
            self.position_embeddings = nn.Parameter(torch.zeros(1, 1 + cfg.num_patches, H))
            self.patch_embeddings = PatchEmbeddings()

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([
                nn.TransformerEncoderLayer(H, cfg.n_head, cfg.intermediate_size, dropout=0.0, activation="gelu",
                                           layer_norm_eps=eps, batch_first=True, norm_first=True)
                for _ in range(cfg.n_layer)])

    class TorchViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = Embeddings()
            self.encoder = Encoder()
            self.layernorm = nn.LayerNorm(H, eps=eps)
            self.classifier = nn.Linear(H, cfg.num_classes)

        def forward(self, images):
            e = self.embeddings
            proj = e.patch_embeddings.projection
            # The patch projection is a stride-P convolution with the Linear weight viewed as [H, C, P, P]:
            # this checks cpuformer's patch order against torch's conv, independently of it.
            p = F.conv2d(images, proj.weight.view(H, C, P, P), proj.bias, stride=P).flatten(2).transpose(1, 2)
            x = torch.cat([e.cls_token.expand(images.shape[0], -1, -1), p], dim=1) + e.position_embeddings
            for layer in self.encoder.layers:
                x = layer(x)
            return self.classifier(self.layernorm(x)[:, 0])

    return TorchViT().double().train()


def load_into_torch(torch, t, m):
    assert set(m.state_dict()) == set(t.state_dict())
    t.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in m.state_dict().items()})


def padded_batch(rng, cfg, B, T):
    """Random ids with [CLS] first, a ragged tail of padding, token types 0/1/2 and an attention mask."""
    ids = rng.integers(4, cfg.vocab_size, (B, T))
    ids[:, 0] = CLS
    lengths = rng.integers(3, T + 1, B)
    lengths[0] = T
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    ids[mask == 0] = PAD
    types = rng.integers(0, cfg.type_vocab_size, (B, T))
    return ids, types, mask


# -- parity -------------------------------------------------------------------------------------

@pytest.mark.parametrize("padded", [True, False])
def test_bert_matches_torch(padded, rng):
    torch = torch_or_skip()
    cfg = bert_config()
    m = cf.BERT(cfg)
    t = torch_bert(torch, cfg)
    load_into_torch(torch, t, m)
    B, T = 3, 11
    if padded:
        ids, types, mask = padded_batch(rng, cfg, B, T)
    else:
        ids, types, mask = rng.integers(0, cfg.vocab_size, (B, T)), None, None
    labels = np.where(rng.random((B, T)) < 0.4, rng.integers(0, cfg.vocab_size, (B, T)), -100)
    labels[0, 1] = 7  # at least one real target
    if padded:
        labels[mask == 0] = -100
    tt = lambda a: None if a is None else torch.tensor(a)  # noqa: E731
    h_t = t(tt(ids), tt(types), tt(mask))
    logits_t = t.mlm_logits(h_t)
    loss_t = torch.nn.functional.cross_entropy(logits_t.reshape(-1, cfg.vocab_size), torch.tensor(labels).reshape(-1))
    loss_t.backward()

    e_h = assert_close(m(ids, types, mask), h_t.detach().numpy(), 1e-5, "hidden")
    e_l = assert_close(m.mlm_logits(ids, token_type_ids=types, attention_mask=mask), logits_t.detach().numpy(),
                       1e-5, "mlm logits")
    loss = m.mlm_loss(ids, labels, token_type_ids=types, attention_mask=mask)
    assert abs(loss - loss_t.item()) < 1e-5 * max(1.0, abs(loss_t.item()))
    m.zero_grad()
    m.backward()
    grads = m.gradients()
    e_g = max(assert_close(grads[name], p.grad.numpy(), 2e-5, f"grad {name}") for name, p in t.named_parameters())
    print(f"BERT (padded={padded}) vs torch float64: hidden {e_h:.2g}, logits {e_l:.2g}, "
          f"loss {abs(loss - loss_t.item()) / abs(loss_t.item()):.2g}, worst grad {e_g:.2g}")


def test_bert_backward_from_hidden_matches_torch(rng):
    torch = torch_or_skip()
    cfg = bert_config()
    m = cf.BERT(cfg)
    t = torch_bert(torch, cfg)
    load_into_torch(torch, t, m)
    ids, types, mask = padded_batch(rng, cfg, 2, 9)
    g = rng.standard_normal((2, 9, cfg.hidden_size))
    h_t = t(torch.tensor(ids), torch.tensor(types), torch.tensor(mask))
    (h_t * torch.tensor(g)).sum().backward()
    m(ids, types, mask)
    m.zero_grad()
    m.backward(grad_hidden=g.astype(np.float32))
    grads = m.gradients()
    worst = 0.0
    for name, p in t.named_parameters():
        if name.startswith("mlm."):
            assert p.grad is None and not grads[name].any()
            continue
        worst = max(worst, assert_close(grads[name], p.grad.numpy(), 2e-5, f"grad {name}"))
    print(f"BERT backward(grad_hidden) vs torch float64: worst grad {worst:.2g}")


def test_vit_matches_torch(rng):
    torch = torch_or_skip()
    cfg = vit_config()
    m = cf.ViT(cfg)
    t = torch_vit(torch, cfg)
    load_into_torch(torch, t, m)
    images = rng.standard_normal((4, 3, 6, 6))
    labels = np.array([0, 4, 2, 2])
    logits_t = t(torch.tensor(images))
    loss_t = torch.nn.functional.cross_entropy(logits_t, torch.tensor(labels))
    loss_t.backward()
    e_l = assert_close(m(images), logits_t.detach().numpy(), 1e-5, "logits")
    loss = m.loss(images, labels)
    assert abs(loss - loss_t.item()) < 1e-5 * max(1.0, abs(loss_t.item()))
    m.zero_grad()
    m.backward()
    grads = m.gradients()
    e_g = max(assert_close(grads[name], p.grad.numpy(), 2e-5, f"grad {name}") for name, p in t.named_parameters())
    print(f"ViT vs torch float64: logits {e_l:.2g}, loss {abs(loss - loss_t.item()) / abs(loss_t.item()):.2g}, "
          f"worst grad {e_g:.2g}")


def test_parameter_counts_follow_the_architecture():
    c = bert_config()
    H, I, V, L = c.hidden_size, c.intermediate_size, c.vocab_size, c.n_layer
    layer = 3 * H * H + 3 * H + H * H + H + H * I + I + I * H + H + 4 * H
    emb = (V + c.max_position_embeddings + c.type_vocab_size) * H + 2 * H
    head = H * H + H + 2 * H + V
    assert cf.BERT(c).num_parameters() == emb + L * layer + head
    v = vit_config()
    H, I, L, K = v.hidden_size, v.intermediate_size, v.n_layer, v.num_channels * v.patch_size ** 2
    layer = 3 * H * H + 3 * H + H * H + H + H * I + I + I * H + H + 4 * H
    emb = H + (1 + v.num_patches) * H + K * H + H
    assert cf.ViT(v).num_parameters() == emb + L * layer + 2 * H + H * v.num_classes + v.num_classes


def test_initialisation_is_bert_style():
    cf.manual_seed(3)
    sd = cf.BERT(bert_config(hidden_size=32, vocab_size=300, intermediate_size=64)).state_dict()
    w = np.concatenate([sd["embeddings.word_embeddings.weight"].ravel(),
                        sd["encoder.layers.0.self_attn.in_proj_weight"].ravel(), sd["mlm.dense.weight"].ravel()])
    assert abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.002
    for k, v in sd.items():
        if k.endswith("bias"):
            assert not v.any(), k
        elif v.ndim == 1:
            assert (v == 1).all(), k  # LayerNorm weights
    vsd = cf.ViT(vit_config()).state_dict()
    assert vsd["embeddings.cls_token"].shape == (1, 1, 12) and vsd["embeddings.cls_token"].std() > 0
    assert vsd["embeddings.position_embeddings"].shape == (1, 10, 12)
    assert vsd["embeddings.patch_embeddings.projection.weight"].shape == (12, 12)


# -- learning -----------------------------------------------------------------------------------

def progression_corpus(rng, n, T, vocab_size):
    """[CLS] a, a+k, a+2k, ... (mod the content vocabulary) [SEP] [PAD]...: every token is predictable
    from its neighbours, so an MLM can learn it."""
    content = vocab_size - 4
    ids = np.full((n, T), PAD, np.int64)
    mask = np.zeros((n, T), np.int64)
    for i in range(n):
        length = int(rng.integers(T // 2, T - 1))
        a, k = rng.integers(0, content), rng.integers(1, 4)
        ids[i, 0] = CLS
        ids[i, 1:1 + length] = 4 + (a + k * np.arange(length)) % content
        ids[i, 1 + length] = SEP
        mask[i, :2 + length] = 1
    return ids, mask


def test_bert_mlm_loss_falls(rng):
    cf.manual_seed(0)
    cfg = bert_config(vocab_size=24, hidden_size=32, n_head=4, intermediate_size=64, type_vocab_size=2,
                      dropout=0.0)
    m = cf.BERT(cfg)
    ids, attn = progression_corpus(rng, 32, 14, cfg.vocab_size)
    opt = cf.optim.AdamW(m, lr=5e-3, weight_decay=0.0)
    gen = np.random.default_rng(7)
    # Evaluated on one fixed masking (15%) of the corpus; trained on fresh 30% maskings each step.
    eval_inputs, eval_labels = cf.data.mask_tokens(ids, MASK, cfg.vocab_size, 0.15, (PAD, CLS, SEP), seed=123)
    first = m.mlm_loss(eval_inputs, eval_labels, attention_mask=attn)
    for _ in range(120):
        inputs, labels = cf.data.mask_tokens(ids, MASK, cfg.vocab_size, 0.3, special_ids=(PAD, CLS, SEP), seed=gen)
        opt.zero_grad()
        m.mlm_loss(inputs, labels, attention_mask=attn)
        m.backward()
        opt.step()
    last = m.mlm_loss(eval_inputs, eval_labels, attention_mask=attn)
    print(f"BERT MLM loss {first:.3f} -> {last:.3f}")
    assert first > 2.5 and last < 0.6 * first, (first, last)


def test_vit_fits_random_images(rng):
    cf.manual_seed(0)
    cfg = vit_config(image_size=8, patch_size=4, hidden_size=32, n_head=4, intermediate_size=64, num_classes=4)
    m = cf.ViT(cfg)
    images = rng.standard_normal((16, 3, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 4, 16)
    opt = cf.optim.AdamW(m, lr=3e-3, weight_decay=0.0)
    first = m.loss(images, labels)
    for _ in range(100):
        opt.zero_grad()
        m.loss(images, labels)
        m.backward()
        opt.step()
    last = m.loss(images, labels)
    acc = float((m(images).argmax(-1) == labels).mean())
    print(f"ViT train loss {first:.3f} -> {last:.4f}, accuracy {acc:.2f}")
    assert first > 1.0 and last < 0.05 and acc == 1.0, (first, last, acc)


def test_seeded_bert_training_repeats_bit_for_bit(rng):
    ids, attn = progression_corpus(rng, 4, 10, 29)

    def run():
        cf.manual_seed(11)
        m = cf.BERT(bert_config(dropout=0.1))
        opt = cf.optim.AdamW(m, lr=3e-3)
        out = []
        for step in range(3):
            inputs, labels = cf.data.mask_tokens(ids, MASK, 29, 0.3, (PAD, CLS, SEP), seed=step)
            opt.zero_grad()
            out.append(m.mlm_loss(inputs, labels, attention_mask=attn))
            m.backward()
            opt.step()
        return out

    assert run() == run()


def test_train_eval_modes(rng):
    m = cf.BERT(bert_config(dropout=0.3))
    ids = rng.integers(0, 29, (2, 8))
    assert m.training
    assert not np.array_equal(m(ids), m(ids))  # dropout active
    m.eval()
    assert not m.training
    np.testing.assert_array_equal(m(ids), m(ids))
    v = cf.ViT(vit_config(dropout=0.3)).eval()
    x = rng.standard_normal((2, 3, 6, 6))
    np.testing.assert_array_equal(v(x), v(x))


# -- mask_tokens --------------------------------------------------------------------------------

def test_mask_tokens_statistics():
    V = 1000
    ids = np.random.default_rng(0).integers(0, V, (200, 500))
    ids[:, 0] = CLS
    ids[:, -5:] = PAD
    before = ids.copy()
    inputs, labels = cf.data.mask_tokens(ids, MASK, V, probability=0.15, special_ids=(PAD, CLS), seed=1)
    np.testing.assert_array_equal(ids, before)  # not modified
    assert inputs.dtype == labels.dtype == np.int64 and inputs.shape == labels.shape == ids.shape
    special = np.isin(ids, (PAD, CLS))
    sel = labels != -100
    assert not sel[special].any()
    np.testing.assert_array_equal(inputs[special], ids[special])
    np.testing.assert_array_equal(labels[sel], ids[sel])
    np.testing.assert_array_equal(inputs[~sel], ids[~sel])
    n = sel.sum()
    assert abs(n / (~special).sum() - 0.15) < 0.005
    masked = (inputs[sel] == MASK) & (ids[sel] != MASK)
    kept = inputs[sel] == ids[sel]
    other = ~masked & ~kept
    assert abs(masked.mean() - 0.8) < 0.01
    assert abs(kept.mean() - 0.1) < 0.008  # (a random token equal to the original: 1e-4)
    assert abs(other.mean() - 0.1) < 0.008
    # random replacements are uniform over the vocabulary: ~ V (1 - exp(-draws / V)) distinct values
    draws = other.sum()
    expected = V * (1 - np.exp(-draws / V))
    assert abs(len(np.unique(inputs[sel][other])) - expected) < 0.05 * expected


def test_mask_tokens_seeds_and_edges():
    ids = np.arange(60).reshape(3, 20) % 50
    a = cf.data.mask_tokens(ids, 3, 50, seed=5)
    b = cf.data.mask_tokens(ids, 3, 50, seed=5)
    c = cf.data.mask_tokens(ids, 3, 50, seed=6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1])
    gen = np.random.default_rng(0)
    assert not np.array_equal(cf.data.mask_tokens(ids, 3, 50, seed=gen)[1], cf.data.mask_tokens(ids, 3, 50, seed=gen)[1])
    inputs, labels = cf.data.mask_tokens(ids, 3, 50, probability=0.0, seed=0)
    assert (labels == -100).all() and np.array_equal(inputs, ids)
    inputs, labels = cf.data.mask_tokens(ids, 3, 50, probability=1.0, special_ids=[0, 1], seed=0)
    np.testing.assert_array_equal(labels != -100, ~np.isin(ids, [0, 1]))
    inputs, labels = cf.data.mask_tokens([[4, 5, 6]], 3, 50, seed=0)
    assert inputs.shape == (1, 3)
    with pytest.raises(IndexError, match="mask_token_id"):
        cf.data.mask_tokens(ids, 50, 50)
    with pytest.raises(IndexError, match="input_ids"):
        cf.data.mask_tokens(ids, 3, 40)
    with pytest.raises(ValueError, match="probability"):
        cf.data.mask_tokens(ids, 3, 50, probability=1.5)
    with pytest.raises(TypeError, match="input_ids"):
        cf.data.mask_tokens(ids.astype(float), 3, 50)
    with pytest.raises(ValueError, match="vocab_size"):
        cf.data.mask_tokens(ids, 0, 0)


# -- checkpoints --------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path, rng):
    m = cf.BERT(bert_config(dropout=0.1)).eval()
    ids, types, mask = padded_batch(rng, m.config, 2, 7)
    m2 = cf.load(m.save(tmp_path / "bert.safetensors")).eval()
    assert type(m2) is cf.BERT and m2.config == m.config
    np.testing.assert_array_equal(m2.mlm_logits(ids, types, mask), m.mlm_logits(ids, types, mask))
    v = cf.ViT(vit_config())
    v2 = cf.load(v.save(tmp_path / "vit.safetensors"))
    assert type(v2) is cf.ViT and v2.config == v.config
    x = rng.standard_normal((2, 3, 6, 6))
    np.testing.assert_array_equal(v2(x), v(x))
    for k, val in v.state_dict().items():
        np.testing.assert_array_equal(v2.state_dict()[k], val)


def test_state_dict_and_gradients_are_views(rng):
    m = cf.ViT(vit_config())
    x = rng.standard_normal((2, 3, 6, 6))
    before = m(x).copy()
    m.parameters()["classifier.bias"][:] += 1.0
    np.testing.assert_allclose(m(x), before + 1.0, rtol=1e-6, atol=1e-6)
    m.loss(x, [1, 2])
    m.backward()
    assert any(g.any() for g in m.gradients().values())
    m.zero_grad()
    assert not any(g.any() for g in m.gradients().values())
    sd = m.state_dict()
    sd["classifier.bias"][:] = 0
    m.load_state_dict(sd)
    assert not m.parameters()["classifier.bias"].any()


# -- bad input ----------------------------------------------------------------------------------

def test_config_errors():
    with pytest.raises(ValueError, match="divisible"):
        bert_config(hidden_size=10, n_head=3)
    with pytest.raises(ValueError, match="vocab_size"):
        bert_config(vocab_size=0)
    with pytest.raises(ValueError, match="dropout"):
        bert_config(dropout=1.0)
    with pytest.raises(ValueError, match="layer_norm_eps"):
        bert_config(layer_norm_eps=0.0)
    with pytest.raises(TypeError, match="n_layer"):
        bert_config(n_layer=2.5)
    with pytest.raises(ValueError, match="patch_size"):
        vit_config(image_size=7, patch_size=2)
    with pytest.raises(ValueError, match="num_classes"):
        vit_config(num_classes=0)
    with pytest.raises(TypeError):
        cf.BERT(vit_config())
    with pytest.raises(TypeError):
        cf.ViT({"image_size": 4})


def test_bert_bad_input():
    m = cf.BERT(bert_config())
    ids = np.ones((2, 5), np.int64)
    with pytest.raises(RuntimeError, match="loss"):
        m.backward()
    with pytest.raises(IndexError, match="input_ids.*out of range"):
        m(np.array([[1, 2, 29]]))
    with pytest.raises(IndexError, match="input_ids.*out of range"):
        m(np.array([[1, -1]]))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        m(np.zeros((1, 17), np.int64))
    with pytest.raises(ValueError, match="2-d"):
        m(np.zeros((2, 2, 2), np.int64))
    with pytest.raises(TypeError, match="input_ids"):
        m(np.array([[0.5, 1.0]]))
    with pytest.raises(IndexError, match="token_type_ids.*out of range"):
        m(ids, token_type_ids=np.full((2, 5), 3))
    with pytest.raises(ValueError, match="token_type_ids.*shape"):
        m(ids, token_type_ids=np.zeros((2, 4), np.int64))
    with pytest.raises(ValueError, match="attention_mask.*shape"):
        m(ids, attention_mask=np.ones((1, 5)))
    with pytest.raises(ValueError, match="attention_mask.*1 .* or 0"):
        m(ids, attention_mask=np.full((2, 5), 2))
    with pytest.raises(IndexError, match="labels"):
        m.mlm_loss(ids, np.full((2, 5), 29))
    with pytest.raises(ValueError, match="labels.*shape"):
        m.mlm_loss(ids, np.zeros((3, 5), np.int64))
    with pytest.raises(ValueError, match="grad_hidden"):
        m(ids)
        m.backward(grad_hidden=np.zeros((2, 5, 3), np.float32))
    # a forward after the loss makes that loss stale
    m.mlm_loss(ids, np.zeros((2, 5), np.int64))
    m.mlm_logits(ids)
    with pytest.raises(RuntimeError, match="loss"):
        m.backward()
    # bool masks work too: all ones == no mask
    np.testing.assert_allclose(m(ids, attention_mask=np.ones((2, 5), bool)), m(ids), rtol=0, atol=0)


def test_vit_bad_input(rng):
    m = cf.ViT(vit_config())
    x = rng.standard_normal((2, 3, 6, 6))
    with pytest.raises(RuntimeError, match="loss"):
        m.backward()
    with pytest.raises(ValueError, match="channels"):
        m(rng.standard_normal((2, 1, 6, 6)))
    with pytest.raises(ValueError, match="image_size"):
        m(rng.standard_normal((2, 3, 6, 8)))
    with pytest.raises(ValueError, match="4-d"):
        m(rng.standard_normal((3, 6, 6)))
    with pytest.raises(TypeError, match="images"):
        m(np.array([["a"]]))
    with pytest.raises(IndexError, match="labels"):
        m.loss(x, [0, 5])
    with pytest.raises(IndexError, match="labels"):
        m.loss(x, [0, -1])
    with pytest.raises(ValueError, match="labels"):
        m.loss(x, [0, 1, 2])
    with pytest.raises(ValueError, match="grad_logits"):
        m(x)
        m.backward(np.zeros((3, 5), np.float32))
