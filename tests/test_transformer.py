"""nn.Transformer and the encoder/decoder stacks against torch.nn."""
import numpy as np
import pytest

import cpuformer as cf
from helpers import assert_close, torch_or_skip

TOL = 3e-5


def _load(m, t):
    m.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
def test_transformer_matches_torch(norm_first, masked, rng):
    torch = torch_or_skip()
    d, H, ff = 16, 4, 24
    t = torch.nn.Transformer(d, H, 2, 2, ff, dropout=0.0, batch_first=True, norm_first=norm_first).train()
    m = cf.nn.Transformer(d, H, 2, 2, ff, dropout=0.0, norm_first=norm_first)
    assert list(m.state_dict()) == list(t.state_dict())
    _load(m, t)
    src = rng.standard_normal((2, 7, d)).astype(np.float32)
    tgt = rng.standard_normal((2, 5, d)).astype(np.float32)
    ts = torch.tensor(src, requires_grad=True)
    tt = torch.tensor(tgt, requires_grad=True)
    kw_cf, kw_t = {}, {}
    if masked:
        causal = cf.nn.Transformer.generate_square_subsequent_mask(5)
        np.testing.assert_array_equal(causal, torch.nn.Transformer.generate_square_subsequent_mask(5).numpy())
        spad = np.zeros((2, 7), bool)
        spad[1, -2:] = True
        kw_cf = dict(tgt_mask=causal, src_key_padding_mask=spad, memory_key_padding_mask=spad)
        kw_t = dict(tgt_mask=torch.tensor(causal), src_key_padding_mask=torch.tensor(spad),
                    memory_key_padding_mask=torch.tensor(spad))
    out_t = t(ts, tt, **kw_t)
    g = rng.standard_normal(out_t.shape).astype(np.float32)
    out_t.backward(torch.tensor(g))
    assert_close(m(src, tgt, **kw_cf), out_t.detach().numpy(), TOL, "forward")
    dsrc, dtgt = m.backward(g)
    assert_close(dsrc, ts.grad.numpy(), TOL, "dsrc")
    assert_close(dtgt, tt.grad.numpy(), TOL, "dtgt")
    grads = m.gradients()
    for name, p in t.named_parameters():
        assert_close(grads[name], p.grad.numpy(), 1e-4, name)


def test_stacks_copy_the_prototype_like_torch(rng):
    torch = torch_or_skip()
    tl = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    te = torch.nn.TransformerEncoder(tl, 3, norm=torch.nn.LayerNorm(8, eps=1e-3), enable_nested_tensor=False).train()
    layer = cf.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)
    _load(layer, tl)
    norm = cf.nn.LayerNorm(8, eps=1e-3)
    enc = cf.nn.TransformerEncoder(layer, 3, norm=norm)
    assert list(enc.state_dict()) == list(te.state_dict())
    for k, v in te.state_dict().items():
        np.testing.assert_array_equal(enc.state_dict()[k], v.numpy(), err_msg=k)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    g = rng.standard_normal(x.shape).astype(np.float32)  # not ones: sum(LayerNorm(x)) has ~zero gradient
    out_t = te(tx, is_causal=False)
    out_t.backward(torch.tensor(g))
    assert_close(enc(x), out_t.detach().numpy(), TOL, "encoder forward")
    assert_close(enc.backward(g), tx.grad.numpy(), TOL, "encoder dsrc")

    dl = torch.nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True)
    td = torch.nn.TransformerDecoder(dl, 2).train()
    dlayer = cf.nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, norm_first=True)
    _load(dlayer, dl)
    dec = cf.nn.TransformerDecoder(dlayer, 2)
    mem = rng.standard_normal((2, 4, 8)).astype(np.float32)
    tm = torch.tensor(mem, requires_grad=True)
    ty = torch.tensor(x, requires_grad=True)
    out_t = td(ty, tm)
    out_t.backward(torch.tensor(g))
    assert_close(dec(x, mem), out_t.detach().numpy(), TOL, "decoder forward")
    dy, dmem = dec.backward(g)
    assert_close(dy, ty.grad.numpy(), TOL, "decoder dtgt")
    assert_close(dmem, tm.grad.numpy(), TOL, "decoder dmemory")


def test_transformer_bad_input():
    with pytest.raises(TypeError, match="encoder_layer"):
        cf.nn.TransformerEncoder(cf.nn.Linear(2, 2), 2)
    with pytest.raises(ValueError, match="num_layers"):
        cf.nn.TransformerEncoder(cf.nn.TransformerEncoderLayer(8, 2), 0)
    with pytest.raises(ValueError, match="norm"):
        cf.nn.TransformerEncoder(cf.nn.TransformerEncoderLayer(8, 2), 1, norm=cf.nn.LayerNorm(4))
    m = cf.nn.Transformer(8, 2, 1, 1, 16)
    with pytest.raises(ValueError):
        m(np.zeros((2, 3, 8)), np.zeros((3, 3, 8)))
    with pytest.raises(RuntimeError, match="before forward"):
        cf.nn.Transformer(8, 2, 1, 1, 16).backward(np.zeros((1, 2, 8)))
