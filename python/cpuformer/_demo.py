"""``python -m cpuformer demo``: train a small character-level GPT on text that
ships with every Python installation (the standard library's own source),
with a progress bar, then print a generated sample and save the checkpoint."""
from __future__ import annotations

import os
import time

import numpy as np

from ._demo_data import CharTokenizer, batch_stream, load_corpus


def train_char_gpt(steps: int = 600, precision: str = "fp32", progress: bool = True, verbose: bool = False):
    """The demo's training run: a 4-layer character GPT on standard-library
    source, AdamW with warmup and cosine decay, batch 16 x 64, seed 0.
    Returns (model, tokenizer, history)."""
    import cpuformer as cf

    text = load_corpus()
    tok = CharTokenizer(text)
    data = tok.encode(text)
    split = int(0.95 * len(data))
    cf.manual_seed(0)
    cfg = cf.GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
    model = cf.GPT(cfg)
    if verbose:
        print(f"corpus: {len(text):,} characters of standard-library source, vocabulary {tok.vocab_size}")
        print(f"model: GPT with {model.num_parameters():,} parameters "
              f"({cfg.n_layer} layers, {cfg.n_head} heads, width {cfg.n_embd}, context {cfg.block_size}), "
              f"precision {precision}")
    opt = cf.optim.AdamW(model, lr=2e-3, weight_decay=0.01, no_decay=("bias", "norm", "ln_f", "wpe"))
    schedule = cf.optim.WarmupCosine(2e-3, warmup_steps=min(50, steps // 10), total_steps=max(1, steps),
                                     min_lr=2e-4)
    eval_data = data[split:]
    eval_batches = lambda: (b for _, b in zip(range(4), batch_stream(eval_data, 16, cfg.block_size, 1)))  # noqa: E731
    hist = cf.fit(model, opt, batch_stream(data[:split], 16, cfg.block_size, 0), steps=steps, grad_clip=1.0,
                  schedule=schedule, eval_batches=eval_batches if steps else None, progress=progress,
                  precision=precision)
    return model, tok, hist


def run_gpt_demo(args) -> int:
    steps = args.steps if args.steps is not None else 600
    t0 = time.perf_counter()
    model, tok, hist = train_char_gpt(steps, getattr(args, "precision", "fp32"), progress=True, verbose=True)
    elapsed = time.perf_counter() - t0
    if hist["loss"]:
        print(f"trained {steps} steps in {elapsed:.1f}s: loss {hist['loss'][0]:.3f} -> {np.mean(hist['loss'][-10:]):.3f}"
              f" (median {np.median(hist['tokens_per_s']):,.0f} tokens/s)")
    if hist["eval_loss"]:
        print(f"held-out loss: {hist['eval_loss'][-1]:.3f}")
    prompt = tok.encode("def ")
    out = model.generate(prompt[None, :], max_new_tokens=300, temperature=0.8, top_k=20, seed=0)[0]
    print("\n--- sample (temperature 0.8, top_k 20) ---")
    print(tok.decode(out))
    print("--- end of sample ---\n")
    save = getattr(model, "save", None)
    if save is not None:
        out_path = args.out or os.path.join(os.getcwd(), "cpuformer-demo-gpt.safetensors")
        save(out_path)
        print(f"checkpoint saved to {out_path} (load it with cpuformer.load)")
    return 0


def run_seq2seq_demo(args) -> int:
    """Learn to reverse digit sequences with the original encoder-decoder, then decode examples."""
    import cpuformer as cf

    BOS, EOS, FIRST, DIGITS, LENGTH = 1, 2, 3, 10, 8  # token 0 is padding
    steps = args.steps if args.steps is not None else 400
    rng = np.random.default_rng(0)

    def batch(n):
        src = rng.integers(FIRST, FIRST + DIGITS, (n, LENGTH))
        tgt = src[:, ::-1]
        return (src, np.concatenate([np.full((n, 1), BOS), tgt], 1), np.concatenate([tgt, np.full((n, 1), EOS)], 1))

    cf.manual_seed(0)
    cfg = cf.Seq2SeqConfig(src_vocab_size=FIRST + DIGITS, tgt_vocab_size=FIRST + DIGITS, d_model=64, nhead=4,
                           num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=128, dropout=0.0, max_len=16)
    model = cf.Seq2Seq(cfg)
    print(f"task: reverse sequences of {LENGTH} digits; model: Seq2Seq with {model.num_parameters():,} parameters")
    opt = cf.optim.AdamW(model, lr=2e-3, weight_decay=0.0)
    sched = cf.optim.WarmupCosine(2e-3, min(30, steps // 10), max(1, steps), min_lr=1e-4)
    cf.fit(model, opt, (batch(64) for _ in range(steps)), steps=steps, schedule=sched, grad_clip=1.0)
    src, _, tgt_out = batch(500)
    greedy = model.greedy_decode(src, BOS, EOS, max_len=LENGTH + 1)
    beam = model.beam_search(src, BOS, EOS, max_len=LENGTH + 1, beam_size=4)
    acc_g = np.mean(np.all(greedy == tgt_out, axis=1))
    acc_b = np.mean(np.all(beam == tgt_out, axis=1))
    print(f"exact match on 500 new sequences: greedy {acc_g:.1%}, beam search (4) {acc_b:.1%}")
    show = lambda ids: " ".join(str(int(t) - FIRST) for t in ids if t >= FIRST)  # noqa: E731
    for i in range(4):
        print(f"  {show(src[i])}  ->  {show(greedy[i])}")
    if args.out:
        model.save(args.out)
        print(f"checkpoint saved to {args.out}")
    return 0


def run_demo(args) -> int:
    import cpuformer as cf

    if args.threads:
        cf.set_num_threads(args.threads)
    info = cf.build_info()
    print(f"cpuformer {cf.__version__}: {info['simd']}, OpenMP {'on' if info['openmp'] else 'OFF'}, "
          f"{cf.get_num_threads()} thread(s)")
    task = getattr(args, "task", "gpt")
    runners = {"gpt": run_gpt_demo, "seq2seq": run_seq2seq_demo}
    extra = _extra_demos()
    runners.update(extra)
    if task not in runners:
        print(f"demo --task {task}: not available in this version yet (available: {', '.join(runners)})")
        return 2
    return runners[task](args)


def _extra_demos() -> dict:
    try:
        from ._demo_models import DEMOS
    except ImportError:
        return {}
    return DEMOS
