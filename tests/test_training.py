"""fit, checkpoints, resumption, the demo."""
import subprocess
import sys

import numpy as np
import pytest

import cpuformer as cf


def small_gpt(dropout=0.0):
    return cf.GPT(cf.GPTConfig(vocab_size=19, block_size=12, n_layer=2, n_head=2, n_embd=16, dropout=dropout))


def stream(seed, batch=4, T=10, V=19):
    rng = np.random.default_rng(seed)
    while True:
        x = rng.integers(0, V, (batch, T + 1))
        yield x[:, :-1], x[:, 1:]


def test_fit_reduces_loss_and_records_history():
    cf.manual_seed(0)
    m = small_gpt()
    data = [next(stream(1)) for _ in range(1)] * 60  # one batch, repeated: must be memorised
    hist = cf.fit(m, cf.optim.AdamW(m, lr=1e-2), data, steps=60, grad_clip=1.0, progress=False)
    assert len(hist["loss"]) == 60 and len(hist["lr"]) == 60
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]
    assert all(t > 0 for t in hist["tokens_per_s"])


def test_fit_accumulation_equals_big_batch():
    x, y = next(stream(3, batch=4))
    cf.manual_seed(1)
    a = small_gpt()
    cf.manual_seed(1)
    b = small_gpt()
    cf.fit(a, cf.optim.SGD(a, lr=0.1), [(x, y)], steps=1, progress=False)
    halves = [(x[:2], y[:2]), (x[2:], y[2:])]
    cf.fit(b, cf.optim.SGD(b, lr=0.1), halves, steps=1, accumulate=2, progress=False)
    for k, v in a.parameters().items():
        np.testing.assert_allclose(v, b.parameters()[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_fit_stops_on_nonfinite_loss_without_touching_weights():
    m = small_gpt()
    before = m.state_dict()

    class Bad:
        def __init__(self, inner):
            self.inner, self.config, self._impl = inner, inner.config, inner._impl

        def loss(self, x, y):
            return float("nan")

        def train(self, mode=True):
            return self

    with pytest.raises(FloatingPointError, match="non-finite"):
        cf.fit(Bad(m), cf.optim.AdamW(m), stream(0), steps=3, progress=False)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    hist = cf.fit(Bad(m), cf.optim.AdamW(m), stream(0), steps=2, progress=False, skip_nonfinite=True)
    assert hist["skipped"] == 2


def test_fit_bad_arguments():
    m = small_gpt()
    opt = cf.optim.AdamW(m)
    with pytest.raises(ValueError, match="accumulate"):
        cf.fit(m, opt, stream(0), steps=1, accumulate=0)
    with pytest.raises(ValueError, match="ran out"):
        cf.fit(m, opt, [next(stream(0))], steps=3, progress=False)


def test_save_load_round_trip(tmp_path):
    m = small_gpt()
    x, _ = next(stream(2))
    path = m.save(tmp_path / "gpt.safetensors")
    loaded = cf.load(path)
    assert type(loaded) is cf.GPT and loaded.config == m.config
    np.testing.assert_array_equal(loaded(x), m(x))


def test_load_rejects_foreign_files(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(ValueError):
        cf.load(p)
    with pytest.raises(Exception, match="missing|No such|not found|exist"):
        cf.load(tmp_path / "absent.safetensors")


def test_resumed_run_continues_identically(tmp_path):
    def make():
        cf.manual_seed(5)
        m = small_gpt(dropout=0.1)
        return m, cf.optim.AdamW(m, lr=3e-3)

    def steps(m, opt, it, n):
        out = []
        for _ in range(n):
            x, y = next(it)
            opt.zero_grad()
            out.append(m.loss(x, y))
            m.backward()
            opt.step()
        return out

    m, opt = make()
    straight = steps(m, opt, stream(9), 6)

    m, opt = make()
    it = stream(9)
    first = steps(m, opt, it, 3)
    cf.save_training_state(tmp_path / "state.safetensors", m, opt, step=3)
    cf.manual_seed(12345)  # disturb the generator: the checkpoint must restore it
    m2 = small_gpt(dropout=0.1)
    opt2 = cf.optim.AdamW(m2, lr=1.0)
    step = cf.load_training_state(tmp_path / "state.safetensors", m2, opt2)
    assert step == 3
    assert first + steps(m2, opt2, it, 3) == straight


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo.safetensors"
    r = subprocess.run([sys.executable, "-m", "cpuformer", "demo", "--steps", "15", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "sample" in r.stdout and "loss" in r.stdout + r.stderr
    assert cf.load(out).config.vocab_size > 20


@pytest.mark.parametrize("task", ["seq2seq", "bert", "vit"])
def test_other_demo_tasks_run(task, tmp_path):
    if task == "vit":
        pytest.importorskip("sklearn", reason="the ViT demo uses scikit-learn's bundled digits")
    r = subprocess.run([sys.executable, "-m", "cpuformer", "demo", "--task", task, "--steps", "4"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "accuracy" in r.stdout or "exact match" in r.stdout


def test_vit_demo_without_scikit_learn_says_so(monkeypatch, capsys):
    import builtins

    from cpuformer._demo_models import run_vit_demo

    real_import = builtins.__import__

    def fake_import(name, *a, **k):
        if name.startswith("sklearn"):
            raise ImportError("no sklearn")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake_import)

    class Args:
        steps, out, threads, task = 1, None, None, "vit"

    assert run_vit_demo(Args()) == 2
    assert "scikit-learn" in capsys.readouterr().out


def test_plot_history_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="plot_history needs matplotlib")
    hist = {"step": [0, 1, 2], "loss": [3.0, 2.0, 1.5], "eval_step": [2], "eval_loss": [1.8]}
    path = cf.plot_history(hist, tmp_path / "loss.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
