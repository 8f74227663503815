"""Seq2Seq: parity of its transformer core is covered in test_transformer.py;
here it must learn a task, decode consistently, and reject bad input."""
import numpy as np
import pytest

import cpuformer as cf

PAD, BOS, EOS, FIRST = 0, 1, 2, 3  # tokens 3..12 are "digits"


def reverse_batch(rng, n, length=6, digits=10):
    src = rng.integers(FIRST, FIRST + digits, (n, length))
    tgt = src[:, ::-1]
    tgt_in = np.concatenate([np.full((n, 1), BOS), tgt], axis=1)
    tgt_out = np.concatenate([tgt, np.full((n, 1), EOS)], axis=1)
    return src, tgt_in, tgt_out


@pytest.fixture(scope="module")
def trained():
    cf.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = cf.Seq2SeqConfig(src_vocab_size=13, tgt_vocab_size=13, d_model=64, nhead=4, num_encoder_layers=2,
                           num_decoder_layers=2, dim_feedforward=128, dropout=0.0, max_len=16)
    m = cf.Seq2Seq(cfg)
    opt = cf.optim.AdamW(m, lr=2e-3, weight_decay=0.0)
    sched = cf.optim.WarmupCosine(2e-3, 30, 500, min_lr=1e-4)
    batches = (reverse_batch(rng, 64) for _ in range(500))
    hist = cf.fit(m, opt, batches, steps=500, schedule=sched, grad_clip=1.0, progress=False)
    return m, hist


def test_seq2seq_learns_to_reverse(trained):
    m, hist = trained
    assert hist["loss"][-1] < 0.1 * hist["loss"][0]
    src, tgt_in, tgt_out = reverse_batch(np.random.default_rng(1), 200)
    out = m.greedy_decode(src, BOS, EOS, max_len=8)
    assert out.shape == (200, 8) and out.dtype == np.int64
    exact = np.mean(np.all(out[:, :7] == tgt_out, axis=1))
    assert exact >= 0.95, f"greedy exact match {exact:.3f}"
    beam = m.beam_search(src, BOS, EOS, max_len=8, beam_size=4)
    exact_beam = np.mean(np.all(beam[:, :7] == tgt_out, axis=1))
    assert exact_beam >= 0.95, f"beam exact match {exact_beam:.3f}"
    assert np.all(out[:, 7] == EOS)  # padded with eos after stopping


def test_greedy_equals_argmax_of_full_forward(trained):
    m, _ = trained
    src, _, _ = reverse_batch(np.random.default_rng(2), 3)
    out = m.greedy_decode(src, BOS, EOS, max_len=5)
    tgt = np.full((3, 1), BOS)
    for t in range(5):
        nxt = m(src, tgt)[:, -1].argmax(-1)
        np.testing.assert_array_equal(out[:, t], nxt)
        tgt = np.concatenate([tgt, nxt[:, None]], axis=1)


def test_beam_size_one_is_greedy(trained):
    m, _ = trained
    src = np.random.default_rng(3).integers(FIRST, 13, (4, 5))
    np.testing.assert_array_equal(m.beam_search(src, BOS, EOS, 6, beam_size=1), m.greedy_decode(src, BOS, EOS, 6))


def test_padding_mask_changes_nothing_for_unpadded_rows(trained):
    m, _ = trained
    src, tgt_in, _ = reverse_batch(np.random.default_rng(4), 2)
    pad = np.zeros(src.shape, bool)
    np.testing.assert_allclose(m(src, tgt_in, src_key_padding_mask=pad), m(src, tgt_in), rtol=1e-5, atol=1e-6)
    pad[0, -2:] = True
    a = m(src, tgt_in, src_key_padding_mask=pad)
    changed = src.copy()
    changed[0, -2:] = 5  # padded positions must not matter
    np.testing.assert_allclose(m(changed, tgt_in, src_key_padding_mask=pad)[0], a[0], rtol=1e-5, atol=1e-5)


def test_seq2seq_bad_input():
    m = cf.Seq2Seq(cf.Seq2SeqConfig(7, 9, d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                    dim_feedforward=16, max_len=10))
    src = np.zeros((2, 4), np.int64)
    with pytest.raises(IndexError, match="src"):
        m(np.full((2, 4), 7), src)
    with pytest.raises(IndexError, match="tgt"):
        m(src, np.full((2, 3), 9))
    with pytest.raises(ValueError, match="max_len"):
        m(np.zeros((1, 11), np.int64), src[:1])
    with pytest.raises(ValueError, match="batch"):
        m(src, np.zeros((3, 2), np.int64))
    with pytest.raises(RuntimeError, match="loss"):
        m.backward()
    with pytest.raises(IndexError, match="bos_id"):
        m.greedy_decode(src, 9, 1, 3)
    with pytest.raises(ValueError, match="max_len"):
        m.greedy_decode(src, 0, 1, 10)
    with pytest.raises(ValueError, match="beam_size"):
        m.beam_search(src, 0, 1, 3, beam_size=0)
    with pytest.raises(TypeError, match="padding"):
        m(src, src, src_key_padding_mask=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="divisible"):
        cf.Seq2SeqConfig(5, 5, d_model=10, nhead=3)


@pytest.mark.parametrize("k", [10**12, 2**62, 2**63 - 1])
def test_beam_search_refuses_impossible_beam_counts_up_front(k):
    """The beams' memory alone would exceed this machine's: ValueError before any allocation."""
    m = cf.Seq2Seq(cf.Seq2SeqConfig(9, 9, d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                    dim_feedforward=16, max_len=10))
    src = np.full((2, 3), 4)
    with pytest.raises(ValueError, match=rf"^beam_size: {k} beams for each of 2 source rows of length 3 need at "
                                         rf"least \d+ MiB .*more than this machine's \d+ MiB of memory$"):
        m.beam_search(src, BOS, EOS, 5, beam_size=k)
    assert m.training
    # A legitimate wide beam (more beams than target tokens) still runs.
    out = m.beam_search(src, BOS, EOS, 5, beam_size=64)
    assert out.shape == (2, 5) and out.dtype == np.int64 and np.all((out >= 0) & (out < 9))
