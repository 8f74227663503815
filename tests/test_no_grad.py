"""cf.no_grad(): same outputs, nothing saved for backward, thread-local."""
import threading

import numpy as np
import pytest

import cpuformer as cf


def test_no_grad_gives_the_same_outputs_and_blocks_backward(rng):
    layer = cf.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0)
    x = rng.standard_normal((2, 7, 16))
    with cf.no_grad():
        first = layer(x)
    with pytest.raises(RuntimeError, match="no_grad"):  # nothing was saved
        layer.backward(np.ones_like(first))
    ref = layer(x)
    assert cf.is_grad_enabled()
    with cf.no_grad():
        assert not cf.is_grad_enabled()
        out = layer(x)
    assert cf.is_grad_enabled()
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(first, ref)
    # As in torch, an inference call between a forward with grad and its
    # backward changes nothing: the backward uses what that forward saved.
    layer.zero_grad()
    dx = layer.backward(np.ones_like(out))
    grads = {k: v.copy() for k, v in layer.gradients().items()}
    layer.zero_grad()
    layer(x)
    np.testing.assert_array_equal(layer.backward(np.ones_like(out)), dx)
    for k, v in layer.gradients().items():
        np.testing.assert_array_equal(v, grads[k], err_msg=k)

    gpt = cf.GPT(cf.GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    ids = rng.integers(0, 11, (2, 8))
    full = gpt(ids)
    with cf.no_grad():
        np.testing.assert_array_equal(gpt(ids), full)
        gpt.loss(ids, ids)
    with pytest.raises(RuntimeError):  # the loss under no_grad kept nothing for backward
        gpt.backward()
    gpt.loss(ids, ids)  # with grad again: backward works
    gpt.backward()


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_fused_inference_path_leaves_the_saved_forward_alone(rng, norm_first, activation):
    # Under no_grad the feed-forward block runs fused (bias and activation in
    # the product's epilogue) on a replica of the layer: the backward of an
    # earlier forward with grad still finds what that forward saved. (On the
    # C++ module itself a no-grad forward drops it: cpp/tests/test_replicas.cpp.)
    layer = cf.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, activation=activation, norm_first=norm_first)
    layer.eval()
    x = rng.standard_normal((2, 5, 16))
    g = rng.standard_normal((2, 5, 16))
    ref = layer(x)
    dx_ref = layer.backward(g)
    grads_ref = {k: v.copy() for k, v in layer.gradients().items()}
    layer.zero_grad()
    np.testing.assert_allclose(layer(x), ref, rtol=0, atol=0)
    with cf.no_grad():
        out = layer(x)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(layer.backward(g), dx_ref)
    for k, v in layer.gradients().items():
        np.testing.assert_array_equal(v, grads_ref[k], err_msg=k)
    # Training mode with dropout under no_grad keeps the unfused path (dropout applies).
    layer.train()
    with cf.no_grad():
        a, b = layer(x), layer(x)
    assert not np.allclose(a, b)


def test_no_grad_decorator_and_restores_after_errors(rng):
    m = cf.nn.Linear(3, 2)

    @cf.no_grad()
    def infer(x):
        assert not cf.is_grad_enabled()
        return m(x)

    infer(np.ones((1, 3)))
    assert cf.is_grad_enabled()
    with pytest.raises(ValueError):
        with cf.no_grad():
            m(np.ones((1, 4)))
    assert cf.is_grad_enabled()


def test_no_grad_is_per_thread():
    seen = {}

    def other():
        seen["other"] = cf.is_grad_enabled()

    with cf.no_grad():
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen["other"] is True
