"""Seq2Seq decoding with the decoder's KV cache against a pure-Python reference
that reruns the model's full forward over the whole prefix at every step (as
decoding did before the cache) and repeats greedy / beam-search bookkeeping in
NumPy float32, on random untrained models with source padding.

The cached step and the full forward agree to ~1e-6 but not bitwise, so a
decision whose margin in the reference is below MARGIN could go either way:
such a case is skipped (and counted: most cases must be decided clearly).
"""
import numpy as np
import pytest

import cpuformer as cf

BOS, EOS = 1, 2
MARGIN = 1e-4


def make_model(seed, src_vocab=11, tgt_vocab=13, d_model=16, layers=2):
    cf.manual_seed(seed)
    cfg = cf.Seq2SeqConfig(src_vocab_size=src_vocab, tgt_vocab_size=tgt_vocab, d_model=d_model, nhead=2,
                           num_encoder_layers=layers, num_decoder_layers=layers, dim_feedforward=2 * d_model,
                           dropout=0.1, max_len=16)
    return cf.Seq2Seq(cfg)


def make_source(rng, B, S, vocab):
    """Random ids [B, S] and a padding mask whose rows keep 1..S tokens (None when no row is padded)."""
    src = rng.integers(3, vocab, (B, S))
    lengths = rng.integers(1, S + 1, B)
    pad = np.arange(S)[None, :] >= lengths[:, None]
    return src, (pad if pad.any() else None)


def full_log_probs(m, src, tgt, pad):
    """log_softmax of the full forward's logits at the last position [R, V], computed as the C++ does
    (float32, the sum of exponentials in float64)."""
    logits = np.asarray(m(src, tgt, src_key_padding_mask=pad)[:, -1], np.float32)
    mx = logits.max(-1, keepdims=True)
    s = np.exp((logits - mx).astype(np.float64)).sum(-1, keepdims=True)
    return logits - (mx + np.log(s).astype(np.float32))


def reference_greedy(m, src, max_len, pad):
    """-> (tokens [B, max_len], smallest top-1 / top-2 log-prob gap of a decision taken)."""
    B = src.shape[0]
    out = np.full((B, max_len), EOS, np.int64)
    tgt = np.full((B, 1), BOS, np.int64)
    done = np.zeros(B, bool)
    margin = np.inf
    for t in range(max_len):
        lp = full_log_probs(m, src, tgt, pad)
        top2 = np.sort(lp, -1)[:, -2:]
        if (~done).any():
            margin = min(margin, float((top2[:, 1] - top2[:, 0])[~done].min()))
        tok = np.where(done, EOS, lp.argmax(-1))
        out[:, t] = tok
        done |= tok == EOS
        tgt = np.concatenate([tgt, tok[:, None]], axis=1)
        if done.all():
            break
    return out, margin


def reference_beam(m, src, max_len, K, length_penalty, pad):
    """Beam search as Seq2Seq.beam_search does it, on the full forward of every
    beam's prefix with the source repeated per beam.
    -> (tokens [B, max_len], smallest gap at a decision: the last kept vs the
    first dropped candidate, and the best vs the second-best final hypothesis)."""
    B = src.shape[0]
    V = m.config.tgt_vocab_size
    R = B * K
    src_r = np.repeat(src, K, axis=0)
    pad_r = None if pad is None else np.repeat(pad, K, axis=0)
    lp_pen = np.float32(length_penalty)
    score = np.full(R, -np.inf, np.float32)
    score[::K] = 0.0
    finished = np.zeros(R, bool)
    length = np.zeros(R, np.int64)
    tgt = np.full((R, 1), BOS, np.int64)
    out = np.full((B, max_len), EOS, np.int64)
    margin = np.inf
    for t in range(1, max_len + 1):
        lp = full_log_probs(m, src_r, tgt, pad_r)
        grown = np.empty((R, t + 1), np.int64)
        new_score = np.empty(R, np.float32)
        new_finished = np.empty(R, bool)
        new_length = np.empty(R, np.int64)
        all_finished = True
        for b in range(B):
            scores, idx, lens = [], [], []
            for k in range(K):
                r = b * K + k
                if score[r] == -np.inf:
                    continue
                if finished[r]:
                    scores.append(np.array([score[r]], np.float32))
                    idx.append(np.array([k * V + EOS]))
                    lens.append(np.array([length[r]]))
                    continue
                scores.append(score[r] + lp[r])
                idx.append(k * V + np.arange(V))
                lens.append(np.full(V, t))
            scores, idx, lens = np.concatenate(scores), np.concatenate(idx), np.concatenate(lens)
            rank = scores / np.power(lens.astype(np.float32), lp_pen)
            order = np.lexsort((idx, -rank))  # rank descending, then candidate index ascending
            keep = min(K, len(order))
            if len(order) > keep:
                margin = min(margin, float(rank[order[keep - 1]] - rank[order[keep]]))
            for k in range(K):
                r = b * K + k
                if k >= keep:
                    new_score[r], new_finished[r], new_length[r] = -np.inf, True, t
                    grown[r] = EOS
                    continue
                c = order[k]
                src_beam, tok = b * K + idx[c] // V, idx[c] % V
                new_score[r] = scores[c]
                new_finished[r] = finished[src_beam] or tok == EOS
                new_length[r] = length[src_beam] if finished[src_beam] else t
                grown[r, :t] = tgt[src_beam]
                grown[r, t] = tok
                all_finished = all_finished and new_finished[r]
        tgt, score, finished, length = grown, new_score, new_finished, new_length
        if all_finished or t == max_len:
            for b in range(B):
                live = [b * K + k for k in range(K) if score[b * K + k] != -np.inf]
                vals = [score[r] / np.power(np.float32(max(1, length[r])), lp_pen) for r in live]
                best = live[int(np.argmax(vals))]  # the first of equal values, as the strict > in C++
                if len(vals) > 1:
                    s = np.sort(vals)
                    margin = min(margin, float(s[-1] - s[-2]))
                row = np.concatenate([tgt[best, 1:], np.full(max_len - t, EOS)])
                stop = np.flatnonzero(row == EOS)
                if len(stop):
                    row[stop[0] + 1:] = EOS
                out[b] = row
            return out, margin
    raise AssertionError("unreachable")


CASES = [(seed, B, S) for seed, (B, S) in enumerate([(1, 3), (3, 5), (5, 8), (2, 12), (4, 1), (6, 6)] * 3)]


@pytest.mark.parametrize("seed,B,S", CASES)
def test_greedy_and_beam_match_full_forward_reference(seed, B, S):
    m = make_model(seed)
    rng = np.random.default_rng(100 + seed)
    src, pad = make_source(rng, B, S, m.config.src_vocab_size)
    max_len = int(rng.integers(4, 11))
    m.train()  # decoding switches to eval and back; the reference needs eval (dropout off)
    greedy = m.greedy_decode(src, BOS, EOS, max_len, src_key_padding_mask=pad)
    K, penalty = [(2, 1.0), (3, 0.6), (5, 1.0)][seed % 3]
    beam = m.beam_search(src, BOS, EOS, max_len, beam_size=K, length_penalty=penalty, src_key_padding_mask=pad)
    assert m.training
    m.eval()
    ref, margin = reference_greedy(m, src, max_len, pad)
    ref_beam, beam_margin = reference_beam(m, src, max_len, K, penalty, pad)
    if margin > MARGIN:
        np.testing.assert_array_equal(greedy, ref)
    if beam_margin > MARGIN:
        np.testing.assert_array_equal(beam, ref_beam)
    if min(margin, beam_margin) <= MARGIN:
        pytest.skip(f"a decision within {MARGIN} of a tie (greedy {margin:.2g}, beam {beam_margin:.2g})")


def test_most_cases_are_decided_clearly():
    """Guards the skip above: the margins of the random cases are mostly far above MARGIN."""
    skipped = 0
    for seed, B, S in CASES:
        m = make_model(seed)
        m.eval()
        rng = np.random.default_rng(100 + seed)
        src, pad = make_source(rng, B, S, m.config.src_vocab_size)
        max_len = int(rng.integers(4, 11))
        K, penalty = [(2, 1.0), (3, 0.6), (5, 1.0)][seed % 3]
        margin = min(reference_greedy(m, src, max_len, pad)[1],
                     reference_beam(m, src, max_len, K, penalty, pad)[1])
        skipped += margin <= MARGIN
    assert skipped <= len(CASES) // 6, f"{skipped} of {len(CASES)} cases too close to a tie to compare"


def test_beam_wider_than_vocabulary_matches_reference():
    """More beams than target tokens: dead beams at the first steps, caches reordered across all beams."""
    m = make_model(7, tgt_vocab=5)
    m.eval()
    src, pad = make_source(np.random.default_rng(7), 3, 4, m.config.src_vocab_size)
    out = m.beam_search(src, BOS, EOS, 7, beam_size=8, length_penalty=0.8, src_key_padding_mask=pad)
    ref, margin = reference_beam(m, src, 7, 8, 0.8, pad)
    assert margin > MARGIN
    np.testing.assert_array_equal(out, ref)


def test_padding_is_respected_by_the_cached_decoder():
    """Changing padded source tokens changes nothing; unpadding them changes the decode (the test can see it)."""
    m = make_model(3, d_model=32)
    rng = np.random.default_rng(3)
    src = rng.integers(3, 11, (6, 7))
    pad = np.zeros(src.shape, bool)
    pad[:, 4:] = True
    other = src.copy()
    other[:, 4:] = rng.integers(3, 11, (6, 3))
    for decode in (lambda s, p: m.greedy_decode(s, BOS, EOS, 9, src_key_padding_mask=p),
                   lambda s, p: m.beam_search(s, BOS, EOS, 9, beam_size=3, src_key_padding_mask=p)):
        a = decode(src, pad)
        np.testing.assert_array_equal(decode(other, pad), a)
        assert not np.array_equal(decode(other, None), a)
