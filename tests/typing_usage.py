"""The README's Python examples as plain, typed calls on tiny sizes.

``tests/test_typing.py`` runs ``mypy --strict`` on this file (so the public
API's annotations must describe how the README uses it) and then runs it for
real (so the calls are the API's actual calls). Sections follow the README:
the tour, models and training, pretrained models, generation, low precision,
mixed precision, long sequences and distributed training. What needs files
from outside (tokenizer directories) is left out.

    python tests/typing_usage.py [workdir]
"""
from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path
from typing import Iterator, List, Tuple

import numpy as np
from numpy.typing import NDArray

import cpuformer as cf

Batch = Tuple[NDArray[np.int64], NDArray[np.int64]]


def tour() -> None:
    """README "A tour"."""
    cf.manual_seed(0)
    cf.set_num_threads(2)
    q = k = v = np.random.randn(1, 2, 16, 8).astype(np.float32)  # [B, H, T, D]
    out, lse = cf.functional.scaled_dot_product_attention(q, k, v, is_causal=True, return_lse=True)
    dq, dk, dv = cf.functional.scaled_dot_product_attention_backward(np.ones_like(out), q, k, v, is_causal=True,
                                                                     out=out, lse=lse)
    assert dq.shape == dk.shape == dv.shape == q.shape
    layer = cf.nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32, dropout=0.1)
    x = np.random.randn(2, 5, 16)
    y = layer(x)
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape
    grad: NDArray[np.float32] = layer.gradients()["linear1.weight"]
    assert grad.shape == (32, 16)
    layer.zero_grad()
    layer.eval()
    layer.load_state_dict({name: value.copy() for name, value in layer.state_dict().items()})
    with cf.no_grad():
        assert not cf.is_grad_enabled()
        layer(x)
    info = cf.build_info()
    assert isinstance(info["openmp"], bool)


def counting_batches(n: int, batch: int, T: int, vocab: int) -> Iterator[Batch]:
    rng = np.random.default_rng(0)
    for _ in range(n):
        x = (rng.integers(0, vocab, (batch, 1)) + np.arange(T + 1)) % vocab
        yield x[:, :-1], x[:, 1:]


def models_and_training(workdir: Path) -> cf.GPT:
    """README "Models and training"."""
    cfg = cf.GPTConfig(vocab_size=32, block_size=16, n_layer=2, n_head=2, n_embd=16)
    model = cf.GPT(cfg)
    opt = cf.optim.AdamW(model, lr=3e-3, weight_decay=0.01, no_decay=("bias", "norm"))
    idx = np.random.randint(0, 32, (4, 17))
    loss: float = model.loss(idx[:, :-1], idx[:, 1:])
    assert np.isfinite(loss)
    model.backward()
    opt.step()
    opt.zero_grad()
    history = cf.fit(model, opt, counting_batches(6, 4, 16, 32), steps=6, grad_clip=1.0, progress=False,
                     schedule=cf.optim.WarmupCosine(3e-3, 2, 6))
    assert len(history["loss"]) == 6
    if importlib.util.find_spec("matplotlib") is not None:
        cf.plot_history(history, workdir / "loss.png")
    out = model.generate(idx[:1, :8], max_new_tokens=4, temperature=0.8, top_k=20, seed=0)
    assert out.shape == (1, 12)
    model.save(workdir / "gpt.safetensors")
    loaded = cf.load(workdir / "gpt.safetensors")
    assert isinstance(loaded, cf.GPT)
    cf.save_training_state(workdir / "run.safetensors", model, opt, step=6)
    assert cf.load_training_state(workdir / "run.safetensors", model, opt) == 6

    s2s = cf.Seq2Seq(cf.Seq2SeqConfig(src_vocab_size=12, tgt_vocab_size=12, d_model=16, nhead=2,
                                      num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=32, max_len=16))
    src = np.random.randint(3, 12, (2, 6))
    tgt = np.random.randint(3, 12, (2, 7))
    s2s.loss(src, tgt[:, :-1], tgt[:, 1:])
    s2s.backward()
    greedy = s2s.greedy_decode(src, bos_id=1, eos_id=2, max_len=5)
    beams = s2s.beam_search(src, bos_id=1, eos_id=2, max_len=5, beam_size=2)
    assert greedy.shape == beams.shape == (2, 5)
    return model


def pretrained(workdir: Path, gpt: cf.GPT) -> None:
    """README "Pretrained models": a directory written by save_pretrained, read back by from_pretrained."""
    bert_cfg = cf.BERTConfig(vocab_size=40, max_position_embeddings=16, type_vocab_size=2, n_layer=1, n_head=2,
                             hidden_size=16, intermediate_size=32, pooler=True)
    cf.BERT(bert_cfg).save_pretrained(workdir / "bert")
    bert = cf.from_pretrained(workdir / "bert")
    input_ids = np.random.randint(0, 40, (2, 6))
    token_type_ids = np.zeros_like(input_ids)
    attention_mask = np.ones_like(input_ids)
    hidden = bert(input_ids, token_type_ids, attention_mask)
    logits = bert.mlm_logits(input_ids, attention_mask=attention_mask)
    pooled = bert.pooled_output(input_ids)
    assert hidden.shape == (2, 6, 16) and logits.shape == (2, 6, 40) and pooled.shape == (2, 16)

    gpt.save_pretrained(workdir / "gpt2")
    gpt2 = cf.from_pretrained(workdir / "gpt2", dropout=0.0)
    cf.fit(gpt2, cf.optim.AdamW(gpt2, lr=1e-4), counting_batches(2, 2, 8, 32), steps=2, progress=False)
    gpt2.save_pretrained(workdir / "gpt2-tuned")


def generation(model: cf.GPT) -> None:
    """README "Generation"."""
    ids = np.array([[0, 0, 5, 6], [1, 2, 3, 4]])
    mask = np.array([[0, 0, 1, 1], [1, 1, 1, 1]])
    seen: List[NDArray[np.int64]] = []
    out = model.generate(ids, max_new_tokens=6, attention_mask=mask, temperature=0.8, top_k=8, top_p=0.95, seed=0,
                         eos_token_id=[31], pad_token_id=31, min_new_tokens=2, repetition_penalty=1.2,
                         streamer=seen.append)
    assert out.shape[0] == 2 and len(seen) == out.shape[1] - 4
    steps = 0
    for tokens in model.generate_stream(ids, 6, attention_mask=mask, eos_token_id=31):
        assert tokens.shape == (2,)
        steps += 1
    assert steps >= 1


def low_precision(workdir: Path, model: cf.GPT) -> None:
    """README "Low precision"."""
    idx = np.random.randint(0, 32, (2, 8))
    q = cf.quantize(model, dtype="int8")
    assert q.dtype == "int8"
    logits = q(idx)
    out = q.generate(idx, 4, temperature=0)
    assert logits.shape == (2, 8, 32) and out.shape == (2, 12)
    q.save(workdir / "gpt-int8.safetensors")
    q = cf.load(workdir / "gpt-int8.safetensors")
    bert = cf.from_pretrained(workdir / "bert", dtype="int8")
    assert bert.dtype == "int8"


def mixed_precision(model: cf.GPT) -> None:
    """README "Mixed precision"."""
    opt = cf.optim.AdamW(model, lr=1e-3)
    x, y = next(counting_batches(1, 2, 8, 32))
    with cf.autocast(dtype="bfloat16"):
        assert cf.is_autocast_enabled() and cf.get_autocast_dtype() == "bfloat16"
        model.loss(x, y)
        model.backward()
    opt.step()
    cf.fit(model, opt, counting_batches(2, 2, 8, 32), 2, precision="bf16", progress=False)


def long_sequences() -> None:
    """README "Long sequences"."""
    cf.GPTConfig(vocab_size=32, block_size=64, n_layer=1, n_head=2, n_embd=16,
                 attention="sliding_window", attention_window=4, num_global=1)
    cf.BERTConfig(vocab_size=32, max_position_embeddings=64, type_vocab_size=2, n_layer=1, n_head=2,
                  hidden_size=16, intermediate_size=32, attention="performer", num_features=8)
    q = k = v = np.random.randn(1, 2, 32, 8).astype(np.float32)  # [B, H, T, D]
    g = np.ones_like(q)
    out = cf.functional.sliding_window_attention(q, k, v, window=4, is_causal=True, num_global=2)
    dq, dk, dv = cf.functional.sliding_window_attention_backward(g, q, k, v, 4, is_causal=True)
    out = cf.functional.performer_attention(q, k, v, num_features=8, is_causal=True, seed=0)
    proj_k = proj_v = np.random.randn(8, 32).astype(np.float32)
    out = cf.functional.linformer_attention(q, k, v, proj_k, proj_v)
    cf.BERTConfig(vocab_size=32, max_position_embeddings=64, type_vocab_size=2, n_layer=1, n_head=2,
                  hidden_size=16, intermediate_size=32, attention="bigbird", bigbird_block_size=4,
                  num_window_blocks=3, num_global_blocks=1, num_random_blocks=1)
    out = cf.functional.bigbird_attention(q, k, v, block_size=4, num_window_blocks=3, num_global_blocks=1,
                                          num_random_blocks=1, seed=0, is_causal=False, key_padding_mask=None)
    dq, dk, dv = cf.functional.bigbird_attention_backward(g, q, k, v, block_size=4)
    layout = cf.functional.bigbird_layout(32, 4, 3, 1, 1, seed=0)
    assert out.shape == q.shape and dq.shape == q.shape and layout.shape == (8, 8)


def distributed(workdir: Path, model: cf.GPT) -> None:
    """README "Distributed training (MPI)": one rank when not launched by mpiexec."""
    assert cf.distributed.rank() == 0 and cf.distributed.world_size() == 1
    opt = cf.optim.AdamW(model, lr=1e-3)
    ddp = cf.distributed.DataParallel(model)
    batches = cf.distributed.shard(counting_batches(2, 2, 8, 32), by="row")
    history = cf.fit(model, opt, batches, steps=2, distributed=ddp, checkpoint=workdir / "ddp.safetensors",
                     progress=False)
    assert len(history["step"]) == 2


def mpi_usable() -> bool:
    """Whether mpi4py imports and finds an MPI library (the mpi extra)."""
    try:
        from mpi4py import MPI  # type: ignore[import-not-found, unused-ignore]
    except (ImportError, RuntimeError):
        return False
    return bool(MPI.Get_version() >= (1, 0))


def main(workdir: Path) -> None:
    tour()
    model = models_and_training(workdir)
    pretrained(workdir, model)
    generation(model)
    low_precision(workdir, model)
    mixed_precision(model)
    long_sequences()
    if mpi_usable():
        distributed(workdir, model)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
    print("typing_usage: ok")
