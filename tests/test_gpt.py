"""GPT: parity with an equivalent torch model, learning, generation, errors."""
import numpy as np
import pytest

import cpuformer as cf
from helpers import assert_close, fit_batch, generate_by_recompute, tiny_gpt_config, torch_or_skip


def torch_gpt(torch, cfg):
    """The same architecture built from torch.nn parts, with cpuformer's parameter names."""
    nn = torch.nn
    F = torch.nn.functional

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
            self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
            self.h = nn.ModuleList([
                nn.TransformerEncoderLayer(cfg.n_embd, cfg.n_head, 4 * cfg.n_embd, dropout=0.0,
                                           activation=lambda x: F.gelu(x, approximate="tanh"),
                                           batch_first=True, norm_first=True, bias=cfg.bias)
                for _ in range(cfg.n_layer)])
            self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)

        def forward(self, idx):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(T))
            mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
            for blk in self.h:
                x = blk(x, src_mask=mask)
            return self.ln_f(x) @ self.wte.weight.T

    return TorchGPT().train()


@pytest.mark.parametrize("bias", [True, False])
def test_gpt_matches_torch(bias, rng):
    torch = torch_or_skip()
    cfg = tiny_gpt_config(bias=bias)
    m = cf.GPT(cfg)
    t = torch_gpt(torch, cfg)
    assert set(m.state_dict()) == set(t.state_dict())
    t.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    idx = rng.integers(0, cfg.vocab_size, (3, 11))
    targets = rng.integers(0, cfg.vocab_size, (3, 11))
    targets[0, :4] = -100
    logits_t = t(torch.tensor(idx))
    loss_t = torch.nn.functional.cross_entropy(logits_t.reshape(-1, cfg.vocab_size), torch.tensor(targets).reshape(-1))
    loss_t.backward()
    assert_close(m(idx), logits_t.detach().numpy(), 3e-5, "logits")
    loss = m.loss(idx, targets)
    assert abs(loss - loss_t.item()) < 1e-5 * max(1, abs(loss))
    m.zero_grad()
    m.backward()
    grads = m.gradients()
    for name, p in t.named_parameters():
        assert_close(grads[name], p.grad.numpy(), 1e-4, f"grad {name}")


def test_gpt_memorises_a_batch(rng):
    cf.manual_seed(0)
    cfg = tiny_gpt_config(vocab_size=17, block_size=12, n_embd=32, n_head=4)
    m = cf.GPT(cfg)
    idx = rng.integers(0, 17, (4, 12))
    first, last = fit_batch(m, idx[:, :-1], idx[:, 1:], steps=150, lr=1e-2)
    assert first > 2.0 and last < 0.1, (first, last)


def test_greedy_generation_equals_full_recompute(rng):
    cfg = tiny_gpt_config(block_size=10)
    m = cf.GPT(cfg)
    prompt = rng.integers(0, cfg.vocab_size, (2, 3))
    out = m.generate(prompt, max_new_tokens=12, temperature=0.0)  # runs past block_size: cropping path
    assert out.shape == (2, 15) and out.dtype == np.int64
    np.testing.assert_array_equal(out[:, :3], prompt)
    np.testing.assert_array_equal(out, generate_by_recompute(m, prompt, 12, cfg.block_size))


def test_sampling_is_seeded_and_respects_top_k(rng):
    m = cf.GPT(tiny_gpt_config())
    prompt = rng.integers(0, 23, (2, 4))
    a = m.generate(prompt, 8, temperature=1.0, seed=5)
    b = m.generate(prompt, 8, temperature=1.0, seed=5)
    np.testing.assert_array_equal(a, b)
    # top_k=1 is greedy whatever the temperature
    np.testing.assert_array_equal(m.generate(prompt, 6, temperature=2.0, top_k=1, seed=3),
                                  m.generate(prompt, 6, temperature=0.0))
    # a tiny nucleus is greedy as well
    np.testing.assert_array_equal(m.generate(prompt, 6, top_p=1e-6, seed=4), m.generate(prompt, 6, temperature=0.0))
    one = m.generate(prompt[0], 3, temperature=0.0)
    assert one.shape == (7,)


def test_seeded_training_repeats_bit_for_bit(rng):
    idx = rng.integers(0, 23, (2, 9))

    def run():
        cf.manual_seed(11)
        m = cf.GPT(tiny_gpt_config(dropout=0.1))
        opt = cf.optim.AdamW(m, lr=3e-3)
        out = []
        for _ in range(4):
            opt.zero_grad()
            out.append(m.loss(idx[:, :-1], idx[:, 1:]))
            m.backward()
            opt.step()
        return out

    assert run() == run()


def test_gpt_bad_input():
    with pytest.raises(ValueError, match="divisible"):
        cf.GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=3, n_embd=8)
    with pytest.raises(ValueError, match="vocab_size"):
        cf.GPTConfig(vocab_size=0, block_size=8, n_layer=1, n_head=2, n_embd=8)
    with pytest.raises(TypeError):
        cf.GPT({"vocab_size": 10})
    m = cf.GPT(tiny_gpt_config())
    with pytest.raises(RuntimeError, match="loss"):
        m.backward()
    with pytest.raises(IndexError, match="out of range"):
        m(np.array([[1, 2, 23]]))
    with pytest.raises(IndexError, match="out of range"):
        m(np.array([[1, -1]]))
    with pytest.raises(ValueError, match="block_size"):
        m(np.zeros((1, 17), np.int64))
    with pytest.raises(ValueError, match="targets"):
        m.loss(np.zeros((2, 4), np.int64), np.zeros((2, 3), np.int64))
    with pytest.raises(IndexError, match="targets"):
        m.loss(np.zeros((1, 4), np.int64), np.full((1, 4), 23))
    with pytest.raises(TypeError, match="idx"):
        m(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="2-d"):
        m(np.zeros((2, 2, 2), np.int64))
    with pytest.raises(ValueError, match="top_p"):
        m.generate(np.zeros((1, 2), np.int64), 2, top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        m.generate(np.zeros((1, 2), np.int64), 2, temperature=-1)


def test_eval_disables_every_dropout(rng):
    m = cf.GPT(tiny_gpt_config(dropout=0.5)).eval()
    idx = rng.integers(0, 23, (2, 8))
    np.testing.assert_array_equal(m(idx), m(idx))
    s = cf.Seq2Seq(cf.Seq2SeqConfig(9, 9, d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                    dim_feedforward=16, dropout=0.5, max_len=10)).eval()
    src = rng.integers(0, 9, (2, 5))
    np.testing.assert_array_equal(s(src, src), s(src, src))


@pytest.mark.parametrize("n", [10**12, 2**62, 2**63 - 1])
def test_generate_refuses_impossible_lengths_up_front(n):
    """The output ids alone would exceed this machine's memory: ValueError before any allocation
    (10**12 used to end in MemoryError, 2**63 - 1 in an overflowed size and a crash)."""
    m = cf.GPT(tiny_gpt_config())
    prompt = np.zeros((2, 3), np.int64)
    with pytest.raises(ValueError, match=rf"^max_new_tokens: generating {n} tokens after a \[2, 3\] prompt needs "
                                         rf"at least \d+ MiB \(output ids \[2, 3 \+ {n}\] int64: \d+ MiB; KV cache: "
                                         rf"\d+ MiB\), more than this machine's \d+ MiB of memory$"):
        m.generate(prompt, n, temperature=0.0)
    with pytest.raises(ValueError, match="max_new_tokens: .* does not fit in a 64-bit integer"):
        m.generate(prompt, 2**64)
    assert m.training  # refused before generate switched to eval mode
    assert m.generate(prompt, 3, temperature=0.0).shape == (2, 6)


def test_generate_refuses_a_kv_cache_beyond_memory():
    """A million prompts with a 2**18-position context: the KV cache (16 MiB a row) cannot fit."""
    m = cf.GPT(tiny_gpt_config(vocab_size=5, block_size=2**18, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match=r"^idx: generating 2 tokens after a \[1000000, 1\] prompt needs at least "
                                         r"\d+ MiB .*KV cache: 16000000 MiB\), more than this machine's"):
        m.generate(np.zeros((10**6, 1), np.int64), 2)


def test_generate_long_with_a_sliding_window_still_works(rng):
    """max_new_tokens far past block_size is legitimate: the cache stays bounded."""
    cfg = tiny_gpt_config(block_size=8, attention="sliding_window", attention_window=3)
    m = cf.GPT(cfg)
    prompt = rng.integers(0, cfg.vocab_size, (2, 3))
    out = m.generate(prompt, 2000, temperature=0.0)
    assert out.shape == (2, 2003)
    np.testing.assert_array_equal(out, generate_by_recompute(m, prompt, 2000, cfg.block_size))
