"""``python -m cpuformer demo --task bert|vit``: masked-character filling with a
small BERT, and digit classification with a small ViT."""
from __future__ import annotations

import time

import numpy as np


def run_bert_demo(args) -> int:
    import cpuformer as cf

    from ._demo_data import CharTokenizer, load_corpus

    steps = args.steps if args.steps is not None else 400
    text = load_corpus(200_000)
    tok = CharTokenizer(text)
    data = tok.encode(text)
    MASK = tok.vocab_size  # one extra id for [MASK]
    V, T = tok.vocab_size + 1, 64
    cf.manual_seed(0)
    cfg = cf.BERTConfig(vocab_size=V, max_position_embeddings=T, type_vocab_size=1, n_layer=4, n_head=4,
                        hidden_size=128, intermediate_size=256, dropout=0.0)
    model = cf.BERT(cfg)
    print(f"task: fill in masked characters of standard-library source; BERT with {model.num_parameters():,} "
          "parameters")
    rng = np.random.default_rng(0)
    split = int(0.95 * len(data))

    def batches(source, seed):
        r = np.random.default_rng(seed)
        while True:
            starts = r.integers(0, len(source) - T, 32)
            ids = np.stack([source[s:s + T] for s in starts])
            yield cf.data.mask_tokens(ids, MASK, V, probability=0.15, seed=r)

    opt = cf.optim.AdamW(model, lr=1e-3, weight_decay=0.01)
    sched = cf.optim.WarmupCosine(1e-3, min(40, steps // 10), max(1, steps), min_lr=1e-4)
    t0 = time.perf_counter()
    hist = cf.fit(_MLM(model), opt, batches(data[:split], 0), steps=steps, schedule=sched, grad_clip=1.0)
    print(f"trained {steps} steps in {time.perf_counter() - t0:.1f}s: MLM loss {hist['loss'][0]:.3f} -> "
          f"{np.mean(hist['loss'][-10:]):.3f}")
    model.eval()
    inputs, labels = next(batches(data[split:], 1))
    pred = model.mlm_logits(inputs).argmax(-1)
    sel = labels != -100
    print(f"held-out accuracy on masked characters: {np.mean(pred[sel] == labels[sel]):.1%}")
    row = int(rng.integers(0, len(inputs)))
    shown = "".join("_" if i == MASK else tok.chars[i] for i in inputs[row])
    filled = "".join(tok.chars[p] if labels[row, j] != -100 else tok.chars[min(inputs[row, j], MASK - 1)]
                     for j, p in enumerate(pred[row]))
    print(f"  masked : {shown!r}\n  filled : {filled!r}")
    return 0


class _MLM:
    """Adapter so cf.fit drives BERT's masked-LM loss."""

    def __init__(self, model):
        self.model, self._impl, self.config = model, model._impl, model.config

    def loss(self, inputs, labels):
        return self.model.mlm_loss(inputs, labels)

    def backward(self):
        self.model.backward()

    def train(self, mode=True):
        self.model.train(mode)
        return self

    def eval(self):
        return self.train(False)


def run_vit_demo(args) -> int:
    import cpuformer as cf

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        print("demo --task vit needs scikit-learn for its bundled 8x8 digits: pip install scikit-learn")
        return 2
    steps = args.steps if args.steps is not None else 300
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # [N, 1, 8, 8]
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    train, test = order[:1500], order[1500:]
    cf.manual_seed(0)
    cfg = cf.ViTConfig(image_size=8, patch_size=2, num_channels=1, num_classes=10, hidden_size=64, n_layer=4,
                       n_head=4, intermediate_size=128)
    model = cf.ViT(cfg)
    print(f"task: classify scikit-learn's 8x8 digits; ViT with {model.num_parameters():,} parameters, "
          f"{len(train)} training / {len(test)} test images")

    def batches():
        r = np.random.default_rng(1)
        while True:
            b = r.choice(train, 64)
            yield images[b], labels[b]

    opt = cf.optim.AdamW(model, lr=2e-3, weight_decay=0.01)
    sched = cf.optim.WarmupCosine(2e-3, min(30, steps // 10), max(1, steps), min_lr=1e-4)
    hist = cf.fit(model, opt, batches(), steps=steps, schedule=sched, grad_clip=1.0)
    model.eval()
    acc = np.mean(model(images[test]).argmax(-1) == labels[test])
    print(f"loss {hist['loss'][0]:.3f} -> {np.mean(hist['loss'][-10:]):.3f}; test accuracy {acc:.1%}")
    if args.out:
        model.save(args.out)
        print(f"checkpoint saved to {args.out}")
    return 0


DEMOS = {"bert": run_bert_demo, "vit": run_vit_demo}
