/* cpuformer C API: load a checkpoint written by Python's `model.save(path)`
 * (or C++'s cpuformer::save_model) and run it from C or any language with a
 * C FFI. C99; link the `cpuformer::cpuformer` CMake target (see README,
 * "Use from C++ and C").
 *
 *   char err[256];
 *   cf_model *m = cf_model_load("model.safetensors", err, sizeof err);
 *   if (!m) { fprintf(stderr, "%s\n", err); return 1; }
 *   int32_t tokens[2 * 8] = {...};                         // [batch=2, seq_len=8]
 *   int64_t n = cf_model_output_size(m, 2, 8);              // 2 * 8 * vocab_size floats
 *   float *logits = malloc(n * sizeof(float));
 *   if (cf_model_forward(m, tokens, 2, 8, logits, n, err, sizeof err) != CF_OK) ...
 *   cf_model_free(m);
 *
 * Errors: every function that can fail returns a status code (CF_OK = 0,
 * otherwise one of the CF_ERR_* values below) or NULL/-1, and writes a
 * human-readable message into `err`: at most err_len bytes including the
 * terminating NUL (longer messages are cut at a UTF-8 character boundary).
 * `err` may be NULL (or err_len 0) when the message is not wanted. Bad input
 * (NULL pointers, negative sizes, token ids out of range, buffers too small,
 * missing or corrupt files, an operation the model class does not support)
 * is reported this way, never by crashing; no C++ exception ever crosses
 * this interface.
 *
 * Threads: a cf_model caches activations during forward, so one cf_model
 * must not be used by two threads at the same time (a call that finds the
 * model busy in another thread fails with CF_ERR_BUSY rather than corrupting
 * it, but do not rely on that for synchronisation, and never call
 * cf_model_free while another thread uses the model). Different cf_model
 * objects are independent and may be used concurrently, including two
 * loaded from the same file. The kernels inside each call are themselves
 * multithreaded (see cf_set_num_threads).
 *
 * Tokens: int32 ids in [0, vocab_size), row-major [batch, seq_len].
 * Images (ViT): float32, row-major [batch, channels, height, width].
 * Outputs: float32, row-major.
 *
 * What each class supports: GPT cf_model_forward (logits),
 * cf_model_generate and cf_model_generate_ex; BERT cf_model_forward (last
 * hidden state); ViT cf_model_forward_images (logits); Seq2Seq loads but has
 * no forward here. Anything else returns CF_ERR_UNSUPPORTED.
 */
#ifndef CPUFORMER_C_API_H
#define CPUFORMER_C_API_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(CPUFORMER_SHARED_LIBRARY)
#if defined(CPUFORMER_BUILDING_LIBRARY)
#define CF_API __declspec(dllexport)
#else
#define CF_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define CF_API __attribute__((visibility("default")))
#else
#define CF_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
#define CF_OK 0
#define CF_ERR_INVALID_ARGUMENT 1 /* NULL pointer, negative or zero size, option out of range, sequence too long */
#define CF_ERR_OUT_OF_RANGE 2     /* a token id outside [0, vocab_size) */
#define CF_ERR_BUFFER_TOO_SMALL 3 /* out_len smaller than what the call writes */
#define CF_ERR_IO 4               /* the file cannot be opened, read or written */
#define CF_ERR_FORMAT 5           /* the file is not a valid cpuformer checkpoint */
#define CF_ERR_UNSUPPORTED 6      /* the operation does not apply to this model class */
#define CF_ERR_OUT_OF_MEMORY 7
#define CF_ERR_BUSY 8             /* the model is in use by another thread */
#define CF_ERR_INTERNAL 9         /* anything else (a bug: please report it) */

/* "CF_OK", "CF_ERR_INVALID_ARGUMENT", ...; "CF_ERR_UNKNOWN" for other values. */
CF_API const char *cf_status_name(int status);

/* The library version, e.g. "0.1.0". */
CF_API const char *cf_version(void);

/* Threads used by the kernels (OpenMP). cf_set_num_threads(n) needs n >= 1
 * and returns CF_OK or CF_ERR_INVALID_ARGUMENT; it applies to every later call
 * from any thread (before it: OMP_NUM_THREADS or all cores). Calls running at
 * the same moment from several threads share those threads between them, and
 * only the first thread that made a call ever runs one on more than one
 * thread: two OpenMP thread pools make every parallel region of both slow.
 * Builds without OpenMP always use 1 thread. */
CF_API int cf_set_num_threads(int n);
CF_API int cf_get_num_threads(void);

typedef struct cf_model cf_model;

/* Loads a checkpoint (any registered class: "GPT", "Seq2Seq", "BERT", "ViT";
 * any precision: float32, or the bfloat16 / int8 checkpoints Python's
 * cpuformer.quantize(...).save() writes) in inference mode (dropout off). Returns NULL on failure with the reason in
 * err (CF_ERR_IO / CF_ERR_FORMAT situations). Free with cf_model_free. */
CF_API cf_model *cf_model_load(const char *path, char *err, size_t err_len);

/* Frees the model; NULL is allowed. */
CF_API void cf_model_free(cf_model *m);

/* The checkpoint's model class ("GPT", "Seq2Seq", "BERT", "ViT"), valid while m lives;
 * NULL when m is NULL. */
CF_API const char *cf_model_class_name(const cf_model *m);

/* The precision of the model's weight matrices: "float32", "bfloat16" or
 * "int8" (a static string); NULL when m is NULL. Inputs and outputs are
 * float32 whatever it is. */
CF_API const char *cf_model_dtype(const cf_model *m);

/* The number of token ids the model accepts (ids are in [0, vocab_size));
 * for Seq2Seq the target vocabulary. -1 when m is NULL or the class has no
 * token input (ViT). */
CF_API int64_t cf_model_vocab_size(const cf_model *m);

/* The longest seq_len cf_model_forward accepts (GPT: block_size, BERT:
 * max_position_embeddings); -1 when m is NULL or the class has no token
 * forward (Seq2Seq, ViT). */
CF_API int64_t cf_model_max_seq_len(const cf_model *m);

/* The number of floats cf_model_forward writes for tokens [batch, seq_len]:
 * GPT batch*seq_len*vocab_size (logits), BERT batch*seq_len*hidden (last
 * hidden state). -1 when m is NULL, batch or seq_len < 1, the size overflows
 * int64, or the class has no token forward (Seq2Seq, ViT). */
CF_API int64_t cf_model_output_size(const cf_model *m, int64_t batch, int64_t seq_len);

/* Forward pass over tokens [batch, seq_len] (seq_len <= cf_model_max_seq_len):
 * writes cf_model_output_size(m, batch, seq_len) floats to out, which holds
 * out_len floats. GPT: logits [batch, seq_len, vocab_size]; BERT: the last
 * hidden state [batch, seq_len, hidden] (token type 0 everywhere, no
 * padding mask). Returns CF_OK or an error code; out is unspecified after an
 * error. ViT takes images: CF_ERR_UNSUPPORTED, use cf_model_forward_images. */
CF_API int cf_model_forward(cf_model *m, const int32_t *tokens, int64_t batch, int64_t seq_len, float *out,
                            int64_t out_len, char *err, size_t err_len);

/* Forward pass over images [batch, channels, height, width] (ViT): channels
 * must equal the config's num_channels and height == width == image_size
 * (CF_ERR_INVALID_ARGUMENT otherwise). Writes the logits [batch, num_classes],
 * batch * num_classes floats, to out, which holds out_len floats
 * (CF_ERR_BUFFER_TOO_SMALL, naming the size needed, when it is smaller).
 * Returns CF_OK or an error code (CF_ERR_UNSUPPORTED for classes that do not
 * take images); out is unspecified after an error. */
CF_API int cf_model_forward_images(cf_model *m, const float *images, int64_t batch, int64_t channels, int64_t height,
                                   int64_t width, float *out, int64_t out_len, char *err, size_t err_len);

/* Autoregressive generation (GPT, with a KV cache). prompt is [batch,
 * prompt_len]; writes the prompt followed by max_new_tokens new ids per row,
 * [batch, prompt_len + max_new_tokens], into out (out_len ints). Prompts
 * longer than the context are cropped to the last max_seq_len tokens.
 *   temperature  0 = greedy (argmax); > 0 samples from softmax(logits / temperature)
 *   top_k        0 = off; otherwise keep the top_k most likely tokens
 *   top_p        1 = off; in (0, 1]: keep the smallest set with probability >= top_p
 *   seed         sampling is a pure function of (seed, weights, prompt): equal
 *                seeds give equal tokens, the same as Python's
 *                model.generate(..., seed=seed)
 * Returns CF_OK or an error code (CF_ERR_UNSUPPORTED for non-GPT models;
 * CF_ERR_INVALID_ARGUMENT, before any allocation, when the generated ids and
 * the KV cache could not fit in this machine's memory). cf_model_generate_ex
 * adds padding masks, stop ids and penalties. */
CF_API int cf_model_generate(cf_model *m, const int32_t *prompt, int64_t batch, int64_t prompt_len,
                             int64_t max_new_tokens, float temperature, int64_t top_k, float top_p, uint64_t seed,
                             int32_t *out, int64_t out_len, char *err, size_t err_len);

/* The options of cf_model_generate_ex, the same as Python's
 * model.generate(...) keywords. Fill one with cf_generate_options_init
 * first, then change the fields wanted: struct_size tells the library which
 * fields the caller's header had, so fields added by later versions go at
 * the end and take their defaults for callers built before them. A
 * struct_size larger than this library knows (a newer header) is accepted;
 * the fields it does not know are ignored. */
typedef struct cf_generate_options {
  size_t struct_size;             /* sizeof(cf_generate_options); set by cf_generate_options_init */
  float temperature;              /* default 1 (as Python's); 0 = greedy (argmax); > 0 samples from
                                     softmax(logits / temperature) */
  int64_t top_k;                  /* default 0 = off; otherwise keep the top_k most likely tokens */
  float top_p;                    /* default 1 = off; in (0, 1]: keep the smallest set with probability
                                     >= top_p */
  uint64_t seed;                  /* default 0; sampling is a pure function of (seed, weights, prompt,
                                     options), the same as Python's model.generate(..., seed=seed) */
  const uint8_t *attention_mask;  /* default NULL = no padding; else [batch, prompt_len]: 1 = token,
                                     0 = padding, padding only at the start of a row (left padding), at
                                     least one token per row. Each row then generates what it would
                                     alone; the ids at padded positions are ignored (any value) and
                                     copied to out unchanged */
  const int32_t *eos_token_ids;   /* default NULL: num_eos_token_ids stop ids; a row that emits one */
  int64_t num_eos_token_ids;      /*   stops (default 0 = no stop ids) */
  int64_t pad_token_id;           /* default -1 = eos_token_ids[0] (0 without eos ids): written after a
                                     row stops */
  float repetition_penalty;       /* default 1 = off; > 0: the logits of tokens already in the row
                                     (prompt and generated) are divided by it when positive, multiplied
                                     when negative (Hugging Face's) */
  int64_t min_new_tokens;         /* default 0; the eos ids cannot be emitted before this many new
                                     tokens */
} cf_generate_options;

/* Sets every field of *opt to its default (struct_size included); NULL is
 * allowed (does nothing). */
CF_API void cf_generate_options_init(cf_generate_options *opt);

/* cf_model_generate with every generation option (GPT). prompt is [batch,
 * prompt_len] (cropped to the context as there); out (out_len ints) must
 * hold [batch, prompt_len + max_new_tokens], as for cf_model_generate,
 * whether or not generation ends early. Writes the prompt followed by the new ids; when every row stopped
 * at an eos id before max_new_tokens steps, generation ends there and the
 * columns after prompt_len + *new_tokens are filled with the pad id (as are
 * a stopped row's columns after its eos id). *new_tokens (if new_tokens is
 * not NULL) receives the number of steps run, <= max_new_tokens. opt NULL
 * means the defaults (cf_generate_options_init). With the same options, the
 * result equals Python's model.generate(prompt, max_new_tokens, ...,
 * seed=seed) padded to max_new_tokens columns. Returns CF_OK or an error
 * code: CF_ERR_INVALID_ARGUMENT for bad options (struct_size smaller than
 * the fields above, an attention_mask value other than 0/1, padding after a
 * token or a row of padding only, repetition_penalty <= 0, min_new_tokens <
 * 0, num_eos_token_ids < 0 or eos_token_ids NULL with num_eos_token_ids > 0,
 * and what cf_model_generate rejects); CF_ERR_OUT_OF_RANGE for a prompt id
 * at an unpadded position, an eos id or a pad_token_id (other than -1)
 * outside [0, vocab_size); CF_ERR_BUFFER_TOO_SMALL; CF_ERR_UNSUPPORTED for
 * non-GPT models. *new_tokens and out are unspecified after an error. */
CF_API int cf_model_generate_ex(cf_model *m, const int32_t *prompt, int64_t batch, int64_t prompt_len,
                                int64_t max_new_tokens, const cf_generate_options *opt, int32_t *out,
                                int64_t out_len, int64_t *new_tokens, char *err, size_t err_len);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CPUFORMER_C_API_H */
