/*
 * The inner loop of FastCDC's gear hash (src/engine/chunker/fastcdc.ts says what it computes and
 * why the chunker is built that way). In JavaScript the loop ran at about 1.9 ns per byte on the
 * benchmark machine, bounds checks and all, and a large first backup hashes about a gigabyte
 * with it; in C it runs at about 0.5 ns. Only the loop is here: the chunker's sizes, masks and
 * state stay in fastcdc.ts, and the JavaScript loop, which this must match byte for byte, is the
 * fallback when the addon is not built (test/engine/fastcdc-native.test.ts compares the two).
 */
#include <node_api.h>
#include <stdint.h>

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) return NULL;                                                            \
  } while (0)

/* A typed array's elements, when it is of `want` type, else false with a TypeError thrown. */
static int get_array(napi_env env, napi_value value, napi_typedarray_type want, const char *what,
                     void **data, size_t *length) {
  napi_typedarray_type type;
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, value, &type, length, data, NULL, NULL) != napi_ok ||
      type != want) {
    napi_throw_type_error(env, NULL, what);
    return 0;
  }
  return 1;
}

/*
 * scan(buf, from, stop, mask, gear, state): rolls the gear hash state[0] over buf[from..stop).
 * Returns the index just past the first byte after which (hash & mask) == 0, or -1 when there is
 * none, state[0] then holding the hash after buf[stop - 1]. The arithmetic is 32-bit two's
 * complement, as `((h << 1) + gear[b]) | 0` is in JavaScript.
 */
static napi_value scan(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "scan takes buf, from, stop, mask, gear and state");
    return NULL;
  }
  void *buf_data, *gear_data, *state_data;
  size_t buf_length, gear_length, state_length;
  int64_t from, stop;
  int32_t mask;
  if (!get_array(env, argv[0], napi_uint8_array, "buf must be a Uint8Array", &buf_data,
                 &buf_length) ||
      !get_array(env, argv[4], napi_int32_array, "gear must be an Int32Array", &gear_data,
                 &gear_length) ||
      !get_array(env, argv[5], napi_int32_array, "state must be an Int32Array", &state_data,
                 &state_length))
    return NULL;
  if (napi_get_value_int64(env, argv[1], &from) != napi_ok ||
      napi_get_value_int64(env, argv[2], &stop) != napi_ok ||
      napi_get_value_int32(env, argv[3], &mask) != napi_ok) {
    napi_throw_type_error(env, NULL, "from, stop and mask must be numbers");
    return NULL;
  }
  if (gear_length != 256 || state_length < 1 || from < 0 || stop < from ||
      (uint64_t)stop > buf_length) {
    napi_throw_range_error(env, NULL,
                           "gear must have 256 entries, state at least one, and "
                           "0 <= from <= stop <= buf.length");
    return NULL;
  }
  const uint8_t *b = (const uint8_t *)buf_data;
  const uint32_t *gear = (const uint32_t *)gear_data;
  int32_t *state = (int32_t *)state_data;
  const uint32_t m = (uint32_t)mask;
  uint32_t h = (uint32_t)state[0];
  int64_t found = -1;
  for (int64_t i = from; i < stop; i++) {
    h = (h << 1) + gear[b[i]];
    if ((h & m) == 0) {
      found = i + 1;
      break;
    }
  }
  state[0] = (int32_t)h;
  napi_value result;
  CHECK(napi_create_int64(env, found, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  CHECK(napi_create_function(env, "scan", NAPI_AUTO_LENGTH, scan, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "scan", fn));
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
