"""cf.TextGenerator and `python -m cpuformer generate` on a local GPT-2 directory
built here (a byte-level BPE tokenizer.json trained with `tokenizers`, random
weights), checked against Hugging Face generate on the same files."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import cpuformer as cf

CORPUS = ["Once upon a time there was a little robot.", "The robot liked to read books about the sea.",
          "Héllo wörld, naïve café ☃ snowman, ünïcödé text.", "A longer second prompt goes here."] * 20


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    tk = pytest.importorskip("tokenizers")
    d = tmp_path_factory.mktemp("gpt2_text")
    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                     initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(str(d / "tokenizer.json"))
    eos = tok.token_to_id("<|endoftext|>")
    V = tok.get_vocab_size()
    cf.manual_seed(0)
    m = cf.GPT(cf.GPTConfig(vocab_size=V, block_size=64, n_layer=2, n_head=2, n_embd=32, dropout=0.0))
    g = np.random.default_rng(0)
    m.load_state_dict({k: (v + g.normal(0, 0.4, v.shape)).astype(np.float32) for k, v in m.state_dict().items()})
    m.save_pretrained(str(d))
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(eos_token_id=eos, bos_token_id=eos, pad_token_id=None)
    (d / "config.json").write_text(json.dumps(cfg))
    return str(d), eos


def _hf_text(d, prompts, new, eos, **kw):
    """Hugging Face greedy generate on the same directory, decoded with the same tokenizer."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer

    transformers.logging.set_verbosity_error()
    hf = transformers.GPT2LMHeadModel.from_pretrained(d).eval()
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    rows = [tok.encode(p).ids for p in prompts]
    T = max(map(len, rows))
    ids = torch.tensor([[eos] * (T - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (T - len(r)) + [1] * len(r) for r in rows])
    with torch.inference_mode():
        out = hf.generate(ids, attention_mask=mask, max_new_tokens=new, do_sample=False, eos_token_id=eos,
                          pad_token_id=eos, **kw)
    texts = []
    for row in out[:, T:].tolist():
        row = row[:row.index(eos)] if eos in row else row
        texts.append(tok.decode(row, skip_special_tokens=True))
    return texts


def test_text_generator_matches_transformers(gpt2_dir):
    d, eos = gpt2_dir
    gen = cf.TextGenerator(d)
    prompts = ["Once upon a time", "A longer second prompt about the robot"]
    ours = gen(prompts, max_new_tokens=30, temperature=0, repetition_penalty=1.2)
    assert isinstance(ours, list) and len(ours) == 2 and all(isinstance(t, str) for t in ours)
    assert ours == _hf_text(d, prompts, 30, eos, repetition_penalty=1.2)
    assert gen(prompts[1], max_new_tokens=30, temperature=0, repetition_penalty=1.2) == ours[1]
    assert ours[0] and not ours[0].startswith("Once upon")  # only the new text


def test_text_generator_sampling_is_seeded(gpt2_dir):
    d, _ = gpt2_dir
    gen = cf.TextGenerator(d)
    a = gen("Once upon a time", max_new_tokens=20, temperature=0.8, top_k=40, seed=0)
    b = gen("Once upon a time", max_new_tokens=20, temperature=0.8, top_k=40, seed=0)
    c = gen("Once upon a time", max_new_tokens=20, temperature=0.8, top_k=40, seed=1)
    assert isinstance(a, str) and a == b
    assert a != c


def test_stream_pieces_join_to_the_text(gpt2_dir):
    d, _ = gpt2_dir
    gen = cf.TextGenerator(d)
    for prompt in ["Héllo wörld", "The robot"]:
        pieces = list(gen.stream(prompt, max_new_tokens=40, temperature=0, eos_token_id=None))
        assert "".join(pieces) == gen(prompt, max_new_tokens=40, temperature=0, eos_token_id=None)
        # A piece is held back while the text ends inside a multi-byte character.
        assert all(not p.endswith("\ufffd") for p in pieces[:-1])
        assert len(pieces) > 1


def test_stops_at_the_checkpoint_eos(gpt2_dir):
    d, eos = gpt2_dir
    gen = cf.TextGenerator(d)
    ids, mask = gen.encode(["Once upon a time"])
    free = gen.model.generate(ids, 40, temperature=0, attention_mask=mask)[0, ids.shape[1]:]
    stop = gen.model.generate(ids, 40, temperature=0, attention_mask=mask, eos_token_id=eos)
    if eos in free.tolist():
        assert stop.shape[1] < ids.shape[1] + 40
    else:  # the eos never comes: the text is the same either way
        assert gen("Once upon a time", 40, temperature=0) == gen("Once upon a time", 40, temperature=0,
                                                                  eos_token_id=None)


@pytest.mark.parametrize("dtype", ["int8", "bfloat16"])
def test_every_dtype(gpt2_dir, dtype):
    d, _ = gpt2_dir
    gen = cf.TextGenerator(d, dtype=dtype)
    assert gen.model.dtype == dtype
    ids, mask = gen.encode(["Once upon a time", "The"])
    q = cf.quantize(cf.from_pretrained(d), dtype)
    out = q.generate(ids, 12, temperature=0, attention_mask=mask, eos_token_id=gen.eos_token_id)
    texts = gen(["Once upon a time", "The"], max_new_tokens=12, temperature=0)
    for i in range(2):
        row = [t for t in out[i, ids.shape[1]:].tolist()]
        row = row[:row.index(gen.eos_token_id[0])] if gen.eos_token_id[0] in row else row
        assert texts[i] == gen.tokenizer.decode(row, skip_special_tokens=True)


def test_bad_inputs(gpt2_dir, tmp_path):
    d, _ = gpt2_dir
    gen = cf.TextGenerator(d)
    with pytest.raises(TypeError, match="prompt"):
        gen(3)
    with pytest.raises(TypeError, match="prompt"):
        gen([])
    with pytest.raises(ValueError, match="repetition_penalty"):
        gen("x", repetition_penalty=0)
    with pytest.raises(FileNotFoundError):
        cf.TextGenerator(str(tmp_path))
    with pytest.raises(ValueError, match="dtype"):
        cf.TextGenerator(d, dtype="float16")


def test_cli_prints_the_continuation(gpt2_dir):
    d, _ = gpt2_dir
    gen = cf.TextGenerator(d)
    expect = gen("Once upon a time", max_new_tokens=15, temperature=0)
    r = subprocess.run([sys.executable, "-m", "cpuformer", "generate", d, "Once upon a time", "--max-new-tokens",
                        "15", "--temperature", "0"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Once upon a time" + expect + "\n"
    r = subprocess.run([sys.executable, "-m", "cpuformer", "generate", d, "Once upon a time", "--max-new-tokens",
                        "5", "--temperature", "0.9", "--top-k", "5", "--seed", "3", "--dtype", "int8",
                        "--no-prompt"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout == cf.TextGenerator(d, dtype="int8")("Once upon a time", 5, temperature=0.9, top_k=5,
                                                         seed=3) + "\n"
    r = subprocess.run([sys.executable, "-m", "cpuformer", "generate", d, "x", "--top-p", "2"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "top_p" in r.stderr
