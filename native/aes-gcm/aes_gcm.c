/*
 * AES-256-GCM that writes into a buffer the caller owns (src/engine/crypto/aead.ts says when and
 * why). node:crypto's update() returns a fresh buffer for every call; a backup seals every chunk,
 * and those short-lived outputs were the engine threads' largest use of the C allocator: dead
 * 64 KiB blocks awaiting the threads' collector, 30-45 MiB of arenas at the peak of a large
 * first backup, or, unsliced, page faults on freshly mapped memory.
 *
 * It calls the OpenSSL that Node itself is linked with (the node executable exports its EVP
 * functions, and this addon is built against Node's own OpenSSL headers), so the cipher is the
 * same code node:crypto runs, with AES-NI where the CPU has it. The output format is the one
 * aead.ts has always written; the JavaScript fallback opens what this seals and the other way
 * round (test/engine/aead.test.ts).
 *
 * One cipher context per Node environment (the main thread and each worker thread has its own),
 * set up again with the key and nonce of every call.
 */
#include <limits.h>
#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>

#define KEY_LENGTH 32
#define NONCE_LENGTH 12
#define TAG_LENGTH 16

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) return NULL;                                                            \
  } while (0)

typedef struct {
  uint8_t *data;
  size_t length;
} bytes_t;

/* The bytes of a Uint8Array (a Buffer included), or false with a TypeError thrown. */
static int get_bytes(napi_env env, napi_value value, const char *what, bytes_t *out) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, value, &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, what);
    return 0;
  }
  out->data = (uint8_t *)data;
  out->length = length;
  return 1;
}

static int overlaps(const bytes_t *a, const bytes_t *b) {
  return a->length > 0 && b->length > 0 && a->data < b->data + b->length &&
         b->data < a->data + a->length;
}

static void free_context(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  EVP_CIPHER_CTX_free((EVP_CIPHER_CTX *)data);
}

/* This environment's cipher context, made on first use. */
static EVP_CIPHER_CTX *context(napi_env env) {
  void *data = NULL;
  if (napi_get_instance_data(env, &data) == napi_ok && data) return (EVP_CIPHER_CTX *)data;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (!ctx) return NULL;
  if (napi_set_instance_data(env, ctx, free_context, NULL) != napi_ok) {
    EVP_CIPHER_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

static int check_key_nonce(napi_env env, const bytes_t *key, const bytes_t *nonce) {
  if (key->length != KEY_LENGTH || nonce->length != NONCE_LENGTH) {
    napi_throw_range_error(env, NULL, "the key must be 32 bytes and the nonce 12");
    return 0;
  }
  return 1;
}

/*
 * seal(key, nonce, plaintext, out): writes the ciphertext and then the 16-byte tag into out,
 * which must be exactly plaintext.length + 16 bytes and must not overlap the plaintext.
 */
static napi_value seal_into(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bytes_t key, nonce, plain, out;
  if (argc < 4 || !get_bytes(env, argv[0], "key must be a Uint8Array", &key) ||
      !get_bytes(env, argv[1], "nonce must be a Uint8Array", &nonce) ||
      !get_bytes(env, argv[2], "plaintext must be a Uint8Array", &plain) ||
      !get_bytes(env, argv[3], "out must be a Uint8Array", &out) ||
      !check_key_nonce(env, &key, &nonce))
    return NULL;
  if (plain.length > INT_MAX - TAG_LENGTH || out.length != plain.length + TAG_LENGTH ||
      overlaps(&plain, &out)) {
    napi_throw_range_error(env, NULL,
                           "out must be plaintext.length + 16 bytes, apart from the plaintext");
    return NULL;
  }
  EVP_CIPHER_CTX *ctx = context(env);
  int n = 0, tail = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key.data, nonce.data) != 1 ||
      EVP_EncryptUpdate(ctx, out.data, &n, plain.data, (int)plain.length) != 1 ||
      EVP_EncryptFinal_ex(ctx, out.data + n, &tail) != 1 || (size_t)(n + tail) != plain.length ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LENGTH, out.data + plain.length) != 1) {
    napi_throw_error(env, NULL, "AES-256-GCM encryption failed");
    return NULL;
  }
  return NULL;
}

/*
 * open(key, nonce, ciphertext, tag, out) -> true when the tag authenticates; the plaintext is
 * then in the first ciphertext.length bytes of out (which may be longer; not overlapping the
 * ciphertext). On false, out holds nothing to use.
 */
static napi_value open_into(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bytes_t key, nonce, body, tag, out;
  if (argc < 5 || !get_bytes(env, argv[0], "key must be a Uint8Array", &key) ||
      !get_bytes(env, argv[1], "nonce must be a Uint8Array", &nonce) ||
      !get_bytes(env, argv[2], "ciphertext must be a Uint8Array", &body) ||
      !get_bytes(env, argv[3], "tag must be a Uint8Array", &tag) ||
      !get_bytes(env, argv[4], "out must be a Uint8Array", &out) ||
      !check_key_nonce(env, &key, &nonce))
    return NULL;
  if (tag.length != TAG_LENGTH || body.length > INT_MAX || out.length < body.length ||
      overlaps(&body, &out)) {
    napi_throw_range_error(env, NULL,
                           "the tag must be 16 bytes and out at least as long as the ciphertext, "
                           "apart from it");
    return NULL;
  }
  EVP_CIPHER_CTX *ctx = context(env);
  int n = 0, tail = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key.data, nonce.data) != 1 ||
      EVP_DecryptUpdate(ctx, out.data, &n, body.data, (int)body.length) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LENGTH, tag.data) != 1) {
    napi_throw_error(env, NULL, "AES-256-GCM decryption failed");
    return NULL;
  }
  /* Final is where the tag is checked: anything but 1 is a forgery or damage. */
  int ok = EVP_DecryptFinal_ex(ctx, out.data + n, &tail) == 1 && (size_t)(n + tail) == body.length;
  napi_value result;
  CHECK(napi_get_boolean(env, ok, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  CHECK(napi_create_function(env, "seal", NAPI_AUTO_LENGTH, seal_into, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "seal", fn));
  CHECK(napi_create_function(env, "open", NAPI_AUTO_LENGTH, open_into, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "open", fn));
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
