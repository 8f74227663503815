/* A C99 program using the cpuformer C API.
 *
 *   consumer_c info      <ckpt>
 *   consumer_c forward   <ckpt> <batch> <seq_len> <out.f32> <tokens...>
 *   consumer_c forward-images <ckpt> <batch> <channels> <height> <width> <num_classes> <images.f32> <out.f32>
 *   consumer_c generate  <ckpt> <batch> <prompt_len> <max_new> <temperature> <top_k> <top_p> <seed> <tokens...>
 *   consumer_c generate-ex <ckpt> <batch> <prompt_len> <max_new> [<option>=<value> ...] -- <tokens...>
 *   consumer_c bad-input <gpt ckpt> [<seq2seq ckpt> [<vit ckpt>]]
 *
 * forward writes the output (GPT logits, BERT last hidden state) as raw
 * float32 to <out.f32>; forward-images reads raw float32 images [batch,
 * channels, height, width] and writes the logits [batch, num_classes];
 * generate prints one row of ids per line; generate-ex (cf_model_generate_ex)
 * takes the cf_generate_options fields by name (temperature, top_k, top_p,
 * seed, pad_token_id, repetition_penalty, min_new_tokens, and the
 * comma-separated lists attention_mask and eos_token_ids), prints
 * "new_tokens <n>" and then the rows; bad-input feeds the API wrong
 * arguments and checks every call fails cleanly with the right status and a
 * message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpuformer/c_api.h>

static int64_t parse_i64(const char *s) { return (int64_t)strtoll(s, NULL, 10); }

/* Reads n int32 tokens from argv. */
static int32_t *parse_tokens(char **argv, int argc, int64_t n) {
  int32_t *t;
  int64_t i;
  if (argc < n) {
    fprintf(stderr, "expected %lld tokens, got %d\n", (long long)n, argc);
    return NULL;
  }
  t = (int32_t *)malloc((size_t)(n > 0 ? n : 1) * sizeof *t);
  if (!t) return NULL;
  for (i = 0; i < n; ++i) t[i] = (int32_t)strtol(argv[i], NULL, 10);
  return t;
}

static int cmd_info(const char *path) {
  char err[512];
  cf_model *m = cf_model_load(path, err, sizeof err);
  if (!m) {
    fprintf(stderr, "load failed: %s\n", err);
    return 1;
  }
  printf("version %s\nclass %s\ndtype %s\nvocab_size %lld\nmax_seq_len %lld\nthreads %d\n", cf_version(),
         cf_model_class_name(m), cf_model_dtype(m), (long long)cf_model_vocab_size(m),
         (long long)cf_model_max_seq_len(m), cf_get_num_threads());
  cf_model_free(m);
  return 0;
}

static int cmd_forward(char **argv, int argc) {
  char err[512];
  const char *path = argv[0];
  const int64_t batch = parse_i64(argv[1]), seq_len = parse_i64(argv[2]);
  const char *out_path = argv[3];
  int32_t *tokens = parse_tokens(argv + 4, argc - 4, batch * seq_len);
  cf_model *m = NULL;
  float *out = NULL;
  int64_t n;
  int rc = 1;
  FILE *f;
  if (!tokens) return 1;
  m = cf_model_load(path, err, sizeof err);
  if (!m) {
    fprintf(stderr, "load failed: %s\n", err);
    goto done;
  }
  n = cf_model_output_size(m, batch, seq_len);
  if (n < 0) {
    fprintf(stderr, "no output size for [%lld, %lld]\n", (long long)batch, (long long)seq_len);
    goto done;
  }
  out = (float *)malloc((size_t)n * sizeof *out);
  if (!out) goto done;
  if (cf_model_forward(m, tokens, batch, seq_len, out, n, err, sizeof err) != CF_OK) {
    fprintf(stderr, "forward failed: %s\n", err);
    goto done;
  }
  f = fopen(out_path, "wb");
  if (!f || fwrite(out, sizeof *out, (size_t)n, f) != (size_t)n) {
    fprintf(stderr, "cannot write %s\n", out_path);
    if (f) fclose(f);
    goto done;
  }
  fclose(f);
  printf("wrote %lld floats\n", (long long)n);
  rc = 0;
done:
  free(out);
  free(tokens);
  cf_model_free(m);
  return rc;
}

static int cmd_forward_images(char **argv) {
  char err[512];
  const char *path = argv[0];
  const int64_t batch = parse_i64(argv[1]), channels = parse_i64(argv[2]), height = parse_i64(argv[3]),
                width = parse_i64(argv[4]), classes = parse_i64(argv[5]);
  const char *in_path = argv[6], *out_path = argv[7];
  const int64_t n_in = batch * channels * height * width, n_out = batch * classes;
  float *images = NULL, *out = NULL;
  cf_model *m = NULL;
  int rc = 1;
  FILE *f;
  if (n_in < 1 || n_out < 1) {
    fprintf(stderr, "bad sizes\n");
    return 1;
  }
  images = (float *)malloc((size_t)n_in * sizeof *images);
  out = (float *)malloc((size_t)n_out * sizeof *out);
  if (!images || !out) goto done;
  f = fopen(in_path, "rb");
  if (!f || fread(images, sizeof *images, (size_t)n_in, f) != (size_t)n_in) {
    fprintf(stderr, "cannot read %lld floats from %s\n", (long long)n_in, in_path);
    if (f) fclose(f);
    goto done;
  }
  fclose(f);
  m = cf_model_load(path, err, sizeof err);
  if (!m) {
    fprintf(stderr, "load failed: %s\n", err);
    goto done;
  }
  if (cf_model_forward_images(m, images, batch, channels, height, width, out, n_out, err, sizeof err) != CF_OK) {
    fprintf(stderr, "forward_images failed: %s\n", err);
    goto done;
  }
  f = fopen(out_path, "wb");
  if (!f || fwrite(out, sizeof *out, (size_t)n_out, f) != (size_t)n_out) {
    fprintf(stderr, "cannot write %s\n", out_path);
    if (f) fclose(f);
    goto done;
  }
  fclose(f);
  printf("wrote %lld floats\n", (long long)n_out);
  rc = 0;
done:
  free(images);
  free(out);
  cf_model_free(m);
  return rc;
}

/* Prints ids [batch, total], one row per line. */
static void print_ids(const int32_t *ids, int64_t batch, int64_t total) {
  int64_t b, t;
  for (b = 0; b < batch; ++b) {
    for (t = 0; t < total; ++t) printf(t ? " %d" : "%d", (int)ids[b * total + t]);
    printf("\n");
  }
}

static int cmd_generate(char **argv, int argc) {
  char err[512];
  const char *path = argv[0];
  const int64_t batch = parse_i64(argv[1]), prompt_len = parse_i64(argv[2]), max_new = parse_i64(argv[3]);
  const float temperature = strtof(argv[4], NULL);
  const int64_t top_k = parse_i64(argv[5]);
  const float top_p = strtof(argv[6], NULL);
  const uint64_t seed = (uint64_t)strtoull(argv[7], NULL, 10);
  int32_t *prompt = parse_tokens(argv + 8, argc - 8, batch * prompt_len);
  const int64_t total = prompt_len + max_new;
  int32_t *out = NULL;
  cf_model *m = NULL;
  int rc = 1;
  if (!prompt) return 1;
  m = cf_model_load(path, err, sizeof err);
  if (!m) {
    fprintf(stderr, "load failed: %s\n", err);
    goto done;
  }
  out = (int32_t *)malloc((size_t)(batch * total) * sizeof *out);
  if (!out) goto done;
  if (cf_model_generate(m, prompt, batch, prompt_len, max_new, temperature, top_k, top_p, seed, out, batch * total,
                        err, sizeof err) != CF_OK) {
    fprintf(stderr, "generate failed: %s\n", err);
    goto done;
  }
  print_ids(out, batch, total);
  rc = 0;
done:
  free(out);
  free(prompt);
  cf_model_free(m);
  return rc;
}

/* Reads a comma-separated list of integers; *n receives its length. */
static int64_t *parse_list(const char *s, int64_t *n) {
  int64_t count = 1, i;
  const char *c;
  char *end;
  int64_t *v;
  for (c = s; *c; ++c) count += *c == ',';
  v = (int64_t *)malloc((size_t)count * sizeof *v);
  if (!v) return NULL;
  for (i = 0; i < count; ++i) {
    v[i] = (int64_t)strtoll(s, &end, 10);
    s = *end == ',' ? end + 1 : end;
  }
  *n = count;
  return v;
}

static int cmd_generate_ex(char **argv, int argc) {
  char err[512];
  const char *path = argv[0];
  const int64_t batch = parse_i64(argv[1]), prompt_len = parse_i64(argv[2]), max_new = parse_i64(argv[3]);
  const int64_t total = prompt_len + max_new;
  cf_generate_options opt;
  uint8_t *mask = NULL;
  int32_t *eos = NULL, *prompt = NULL, *out = NULL;
  int64_t *list = NULL, n = 0, mask_len = 0, new_tokens = -1, i;
  cf_model *m = NULL;
  int rc = 1, a;
  cf_generate_options_init(&opt);
  for (a = 4; a < argc && strcmp(argv[a], "--") != 0; ++a) {
    const char *arg = argv[a], *eq = strchr(arg, '=');
    const size_t key_len = eq ? (size_t)(eq - arg) : 0;
    const char *value = eq ? eq + 1 : "";
#define KEY(name) (key_len == strlen(name) && strncmp(arg, name, key_len) == 0)
    if (KEY("temperature")) {
      opt.temperature = strtof(value, NULL);
    } else if (KEY("top_k")) {
      opt.top_k = parse_i64(value);
    } else if (KEY("top_p")) {
      opt.top_p = strtof(value, NULL);
    } else if (KEY("seed")) {
      opt.seed = (uint64_t)strtoull(value, NULL, 10);
    } else if (KEY("pad_token_id")) {
      opt.pad_token_id = parse_i64(value);
    } else if (KEY("repetition_penalty")) {
      opt.repetition_penalty = strtof(value, NULL);
    } else if (KEY("min_new_tokens")) {
      opt.min_new_tokens = parse_i64(value);
    } else if (KEY("attention_mask") || KEY("eos_token_ids")) {
      const int is_mask = KEY("attention_mask");
      list = parse_list(value, &n);
      if (!list) goto done;
      if (is_mask) {
        free(mask);
        mask = (uint8_t *)malloc((size_t)n);
        if (!mask) goto done;
        for (i = 0; i < n; ++i) mask[i] = (uint8_t)list[i];
        opt.attention_mask = mask;
        mask_len = n;
      } else {
        free(eos);
        eos = (int32_t *)malloc((size_t)n * sizeof *eos);
        if (!eos) goto done;
        for (i = 0; i < n; ++i) eos[i] = (int32_t)list[i];
        opt.eos_token_ids = eos;
        opt.num_eos_token_ids = n;
      }
      free(list);
      list = NULL;
    } else {
      fprintf(stderr, "unknown option '%s'\n", arg);
      goto done;
    }
#undef KEY
  }
  if (a == argc) {
    fprintf(stderr, "expected -- before the tokens\n");
    goto done;
  }
  if (opt.attention_mask && mask_len != batch * prompt_len) {
    fprintf(stderr, "attention_mask has %lld values, expected %lld\n", (long long)mask_len,
            (long long)(batch * prompt_len));
    goto done;
  }
  prompt = parse_tokens(argv + a + 1, argc - a - 1, batch * prompt_len);
  if (!prompt) goto done;
  m = cf_model_load(path, err, sizeof err);
  if (!m) {
    fprintf(stderr, "load failed: %s\n", err);
    goto done;
  }
  out = (int32_t *)malloc((size_t)(batch * total) * sizeof *out);
  if (!out) goto done;
  if (cf_model_generate_ex(m, prompt, batch, prompt_len, max_new, &opt, out, batch * total, &new_tokens, err,
                           sizeof err) != CF_OK) {
    fprintf(stderr, "generate_ex failed: %s\n", err);
    goto done;
  }
  printf("new_tokens %lld\n", (long long)new_tokens);
  print_ids(out, batch, total);
  rc = 0;
done:
  free(list);
  free(mask);
  free(eos);
  free(out);
  free(prompt);
  cf_model_free(m);
  return rc;
}

/* ---- bad input ---------------------------------------------------------- */

static int failures = 0;

/* strlen bounded by n (strnlen is POSIX, not C99). */
static size_t bounded_len(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && s[i]) ++i;
  return i;
}

/* The call returned `got`; it should have returned `want` with a non-empty,
 * NUL-terminated message in err (which was filled with 'Z' before). */
static void expect(const char *what, int got, int want, const char *err, size_t err_len) {
  const size_t n = bounded_len(err, err_len);
  if (got != want) {
    printf("FAIL %s: status %s, expected %s (%s)\n", what, cf_status_name(got), cf_status_name(want), err);
    ++failures;
  } else if (n == err_len) {
    printf("FAIL %s: message not NUL-terminated\n", what);
    ++failures;
  } else if (want != CF_OK && n == 0) {
    printf("FAIL %s: empty message\n", what);
    ++failures;
  } else {
    printf("ok %s: %s: %s\n", what, cf_status_name(got), err);
  }
}

#define ERR_RESET() memset(err, 'Z', sizeof err)

static int cmd_bad_input(const char *gpt_path, const char *seq2seq_path, const char *vit_path) {
  char err[256];
  char tiny[8];
  int32_t tokens[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8};
  int32_t ids[64];
  float out[2 * 4 * 512];
  cf_model *m;
  int64_t vocab, max_len, n;
  int rc;

  ERR_RESET();
  m = cf_model_load("/nonexistent/dir/model.safetensors", err, sizeof err);
  expect("load missing file", m ? CF_OK : CF_ERR_IO, CF_ERR_IO, err, sizeof err);
  cf_model_free(m);
  ERR_RESET();
  m = cf_model_load(NULL, err, sizeof err);
  expect("load NULL path", m ? CF_OK : CF_ERR_INVALID_ARGUMENT, CF_ERR_INVALID_ARGUMENT, err, sizeof err);
  cf_model_free(m);
  m = cf_model_load("/nonexistent/dir/model.safetensors", NULL, 0); /* err may be NULL */
  expect("load with err NULL", m ? CF_OK : CF_ERR_IO, CF_ERR_IO, "(no message)", 13);
  cf_model_free(m);
  memset(tiny, 'Z', sizeof tiny);
  m = cf_model_load("/nonexistent/dir/model.safetensors", tiny, sizeof tiny);
  if (m || bounded_len(tiny, sizeof tiny) != sizeof tiny - 1) {
    printf("FAIL load with an 8-byte err: expected a 7-character message, got '%.8s'\n", tiny);
    ++failures;
  } else {
    printf("ok load with an 8-byte err: '%s'\n", tiny);
  }
  cf_model_free(m);
  /* The checkpoint itself as garbage: a directory. */
  ERR_RESET();
  m = cf_model_load("/", err, sizeof err);
  expect("load a directory", m ? CF_OK : CF_ERR_IO, CF_ERR_IO, err, sizeof err);
  cf_model_free(m);

  ERR_RESET();
  m = cf_model_load(gpt_path, err, sizeof err);
  if (!m) {
    printf("FAIL load %s: %s\n", gpt_path, err);
    return 1;
  }
  vocab = cf_model_vocab_size(m);
  max_len = cf_model_max_seq_len(m);
  n = cf_model_output_size(m, 2, 4);
  if (n < 0 || n > (int64_t)(sizeof out / sizeof out[0])) {
    printf("FAIL output size %lld\n", (long long)n);
    return 1;
  }

  ERR_RESET();
  expect("forward ok", cf_model_forward(m, tokens, 2, 4, out, n, err, sizeof err), CF_OK, err, sizeof err);
  tokens[3] = (int32_t)vocab;
  ERR_RESET();
  expect("forward token == vocab_size", cf_model_forward(m, tokens, 2, 4, out, n, err, sizeof err),
         CF_ERR_OUT_OF_RANGE, err, sizeof err);
  tokens[3] = -5;
  ERR_RESET();
  expect("forward negative token", cf_model_forward(m, tokens, 2, 4, out, n, err, sizeof err), CF_ERR_OUT_OF_RANGE,
         err, sizeof err);
  tokens[3] = 4;
  ERR_RESET();
  expect("forward buffer too small", cf_model_forward(m, tokens, 2, 4, out, n - 1, err, sizeof err),
         CF_ERR_BUFFER_TOO_SMALL, err, sizeof err);
  ERR_RESET();
  expect("forward NULL tokens", cf_model_forward(m, NULL, 2, 4, out, n, err, sizeof err), CF_ERR_INVALID_ARGUMENT,
         err, sizeof err);
  ERR_RESET();
  expect("forward NULL out", cf_model_forward(m, tokens, 2, 4, NULL, n, err, sizeof err), CF_ERR_INVALID_ARGUMENT,
         err, sizeof err);
  ERR_RESET();
  expect("forward NULL model", cf_model_forward(NULL, tokens, 2, 4, out, n, err, sizeof err),
         CF_ERR_INVALID_ARGUMENT, err, sizeof err);
  ERR_RESET();
  expect("forward negative batch", cf_model_forward(m, tokens, -2, 4, out, n, err, sizeof err),
         CF_ERR_INVALID_ARGUMENT, err, sizeof err);
  ERR_RESET();
  expect("forward zero seq_len", cf_model_forward(m, tokens, 2, 0, out, n, err, sizeof err), CF_ERR_INVALID_ARGUMENT,
         err, sizeof err);
  ERR_RESET();
  expect("forward seq_len > max_seq_len", cf_model_forward(m, tokens, 1, max_len + 1, out, n, err, sizeof err),
         CF_ERR_INVALID_ARGUMENT, err, sizeof err);
  ERR_RESET();
  expect("forward huge batch", cf_model_forward(m, tokens, INT64_MAX, 4, out, n, err, sizeof err),
         CF_ERR_INVALID_ARGUMENT, err, sizeof err);
  rc = cf_model_forward(m, tokens, 2, 4, out, n - 1, NULL, 0);
  expect("forward error with err NULL", rc, CF_ERR_BUFFER_TOO_SMALL, "(no message)", 13);
  if (cf_model_output_size(m, -1, 4) != -1 || cf_model_output_size(NULL, 1, 1) != -1) {
    printf("FAIL output size of bad arguments is not -1\n");
    ++failures;
  }

  ERR_RESET();
  expect("generate ok", cf_model_generate(m, tokens, 2, 4, 3, 0.0f, 0, 1.0f, 0, ids, 2 * 7, err, sizeof err), CF_OK,
         err, sizeof err);
  ERR_RESET();
  expect("generate buffer too small",
         cf_model_generate(m, tokens, 2, 4, 3, 0.0f, 0, 1.0f, 0, ids, 2 * 7 - 1, err, sizeof err),
         CF_ERR_BUFFER_TOO_SMALL, err, sizeof err);
  ERR_RESET();
  expect("generate negative temperature",
         cf_model_generate(m, tokens, 2, 4, 3, -1.0f, 0, 1.0f, 0, ids, 64, err, sizeof err), CF_ERR_INVALID_ARGUMENT,
         err, sizeof err);
  ERR_RESET();
  expect("generate top_p = 0", cf_model_generate(m, tokens, 2, 4, 3, 1.0f, 0, 0.0f, 0, ids, 64, err, sizeof err),
         CF_ERR_INVALID_ARGUMENT, err, sizeof err);
  ERR_RESET();
  expect("generate negative top_k", cf_model_generate(m, tokens, 2, 4, 3, 1.0f, -2, 1.0f, 0, ids, 64, err, sizeof err),
         CF_ERR_INVALID_ARGUMENT, err, sizeof err);
  ERR_RESET();
  expect("generate negative max_new_tokens",
         cf_model_generate(m, tokens, 2, 4, -3, 1.0f, 0, 1.0f, 0, ids, 64, err, sizeof err), CF_ERR_INVALID_ARGUMENT,
         err, sizeof err);
  tokens[0] = (int32_t)(vocab + 100);
  ERR_RESET();
  expect("generate token out of range", cf_model_generate(m, tokens, 2, 4, 3, 1.0f, 0, 1.0f, 0, ids, 64, err, sizeof err),
         CF_ERR_OUT_OF_RANGE, err, sizeof err);
  tokens[0] = 1;
  {
    cf_generate_options opt;
    const uint8_t right_padded[2 * 4] = {1, 1, 1, 1, 1, 1, 1, 0};
    int32_t eos[2] = {1, 0};
    int64_t new_tokens = -1;
    cf_generate_options_init(&opt);
    ERR_RESET();
    expect("generate_ex NULL options",
           cf_model_generate_ex(m, tokens, 2, 4, 3, NULL, ids, 2 * 7, &new_tokens, err, sizeof err), CF_OK, err,
           sizeof err);
    opt.struct_size = 0;
    ERR_RESET();
    expect("generate_ex struct_size 0",
           cf_model_generate_ex(m, tokens, 2, 4, 3, &opt, ids, 2 * 7, &new_tokens, err, sizeof err),
           CF_ERR_INVALID_ARGUMENT, err, sizeof err);
    cf_generate_options_init(&opt);
    opt.attention_mask = right_padded;
    ERR_RESET();
    expect("generate_ex right padding",
           cf_model_generate_ex(m, tokens, 2, 4, 3, &opt, ids, 2 * 7, &new_tokens, err, sizeof err),
           CF_ERR_INVALID_ARGUMENT, err, sizeof err);
    opt.attention_mask = NULL;
    opt.eos_token_ids = eos;
    opt.num_eos_token_ids = 2;
    eos[1] = (int32_t)vocab;
    ERR_RESET();
    expect("generate_ex eos out of range",
           cf_model_generate_ex(m, tokens, 2, 4, 3, &opt, ids, 2 * 7, &new_tokens, err, sizeof err),
           CF_ERR_OUT_OF_RANGE, err, sizeof err);
    opt.num_eos_token_ids = 0;
    opt.repetition_penalty = 0.0f;
    ERR_RESET();
    expect("generate_ex repetition_penalty 0",
           cf_model_generate_ex(m, tokens, 2, 4, 3, &opt, ids, 2 * 7, &new_tokens, err, sizeof err),
           CF_ERR_INVALID_ARGUMENT, err, sizeof err);
  }
  ERR_RESET();
  expect("generate NULL out", cf_model_generate(m, tokens, 2, 4, 3, 1.0f, 0, 1.0f, 0, NULL, 64, err, sizeof err),
         CF_ERR_INVALID_ARGUMENT, err, sizeof err);

  ERR_RESET();
  expect("set 0 threads", cf_set_num_threads(0), CF_ERR_INVALID_ARGUMENT, "(no message)", 13);
  /* Still usable after every error above. */
  ERR_RESET();
  expect("forward after errors", cf_model_forward(m, tokens, 2, 4, out, n, err, sizeof err), CF_OK, err, sizeof err);
  cf_model_free(m);

  if (seq2seq_path) {
    ERR_RESET();
    m = cf_model_load(seq2seq_path, err, sizeof err);
    if (!m) {
      printf("FAIL load %s: %s\n", seq2seq_path, err);
      return 1;
    }
    ERR_RESET();
    expect("Seq2Seq forward", cf_model_forward(m, tokens, 2, 4, out, n, err, sizeof err), CF_ERR_UNSUPPORTED, err,
           sizeof err);
    ERR_RESET();
    expect("Seq2Seq generate", cf_model_generate(m, tokens, 2, 4, 3, 0.0f, 0, 1.0f, 0, ids, 64, err, sizeof err),
           CF_ERR_UNSUPPORTED, err, sizeof err);
    if (cf_model_output_size(m, 2, 4) != -1) {
      printf("FAIL Seq2Seq output size is not -1\n");
      ++failures;
    }
    cf_model_free(m);
  }
  if (vit_path) {
    /* out (4096 floats) doubles as the image buffer: any values will do. */
    ERR_RESET();
    m = cf_model_load(vit_path, err, sizeof err);
    if (!m) {
      printf("FAIL load %s: %s\n", vit_path, err);
      return 1;
    }
    ERR_RESET();
    expect("ViT forward", cf_model_forward(m, tokens, 2, 4, out, n, err, sizeof err), CF_ERR_UNSUPPORTED, err,
           sizeof err);
    ERR_RESET();
    expect("ViT images wrong channels", cf_model_forward_images(m, out, 1, 7, 8, 8, out + 64, 64, err, sizeof err),
           CF_ERR_INVALID_ARGUMENT, err, sizeof err);
    ERR_RESET();
    expect("ViT images wrong size", cf_model_forward_images(m, out, 1, 1, 9, 9, out + 64, 64, err, sizeof err),
           CF_ERR_INVALID_ARGUMENT, err, sizeof err);
    ERR_RESET();
    expect("ViT images NULL", cf_model_forward_images(m, NULL, 1, 1, 8, 8, out, 64, err, sizeof err),
           CF_ERR_INVALID_ARGUMENT, err, sizeof err);
    ERR_RESET();
    expect("ViT images buffer too small", cf_model_forward_images(m, out, 1, 1, 8, 8, out + 64, 0, err, sizeof err),
           CF_ERR_BUFFER_TOO_SMALL, err, sizeof err);
    if (cf_model_output_size(m, 2, 4) != -1 || cf_model_vocab_size(m) != -1) {
      printf("FAIL ViT token sizes are not -1\n");
      ++failures;
    }
    cf_model_free(m);
  }
  printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "info") == 0) return cmd_info(argv[2]);
  if (argc >= 6 && strcmp(argv[1], "forward") == 0) return cmd_forward(argv + 2, argc - 2);
  if (argc >= 10 && strcmp(argv[1], "forward-images") == 0) return cmd_forward_images(argv + 2);
  if (argc >= 10 && strcmp(argv[1], "generate") == 0) return cmd_generate(argv + 2, argc - 2);
  if (argc >= 7 && strcmp(argv[1], "generate-ex") == 0) return cmd_generate_ex(argv + 2, argc - 2);
  if (argc >= 3 && strcmp(argv[1], "bad-input") == 0)
    return cmd_bad_input(argv[2], argc >= 4 ? argv[3] : NULL, argc >= 5 ? argv[4] : NULL);
  fprintf(stderr, "usage: consumer_c info|forward|forward-images|generate|generate-ex|bad-input ... (see the comment at the "
                  "top)\n");
  return 2;
}
