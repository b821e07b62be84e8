/*
 * glibc allocator settings for coffer's process (src/app/malloc-tuning.ts says when and why).
 *
 * glibc raises its mmap threshold every time a large block allocated with mmap is freed, up to
 * 32 MiB; from then on chunk-sized buffers (hundreds of KiB to a few MiB) come from the arenas
 * of the threads that freed them, and an arena keeps what it held at its peak. A backup's
 * engine threads each ended up with a 64 MiB arena that way. Fixing the thresholds (which
 * also turns the dynamic adjustment off) sends large buffers to mmap and hands freed memory
 * at the top of an arena back to the system.
 *
 * Node-API only, so one build serves every Node version. On a C library other than glibc the
 * functions exist and report that they did nothing.
 */
#include <node_api.h>
#include <stdint.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) return NULL;                                                            \
  } while (0)

/* setThresholds(mmapThreshold, trimThreshold) -> true when both were applied. */
static napi_value set_thresholds(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "setThresholds(mmapThreshold, trimThreshold)");
    return NULL;
  }
  int64_t mmap_threshold = 0, trim_threshold = 0;
  CHECK(napi_get_value_int64(env, argv[0], &mmap_threshold));
  CHECK(napi_get_value_int64(env, argv[1], &trim_threshold));
  if (mmap_threshold <= 0 || mmap_threshold > INT32_MAX || trim_threshold <= 0 ||
      trim_threshold > INT32_MAX) {
    napi_throw_range_error(env, NULL, "thresholds must be from 1 to 2^31-1 bytes");
    return NULL;
  }
  int applied = 0;
#if defined(__GLIBC__)
  applied = mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold) == 1 &&
            mallopt(M_TRIM_THRESHOLD, (int)trim_threshold) == 1;
#endif
  napi_value result;
  CHECK(napi_get_boolean(env, applied, &result));
  return result;
}

static napi_value set_number(napi_env env, napi_value obj, const char *name, double value) {
  napi_value v;
  CHECK(napi_create_double(env, value, &v));
  CHECK(napi_set_named_property(env, obj, name, v));
  return obj;
}

/*
 * stats() -> { arenaBytes, mmappedBytes, mmappedBlocks, inUseBytes, freeBytes } over all arenas
 * (glibc's mallinfo2), or null where that is not available.
 */
static napi_value stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 mi = mallinfo2();
  CHECK(napi_create_object(env, &result));
  if (!set_number(env, result, "arenaBytes", (double)mi.arena)) return NULL;
  if (!set_number(env, result, "mmappedBytes", (double)mi.hblkhd)) return NULL;
  if (!set_number(env, result, "mmappedBlocks", (double)mi.hblks)) return NULL;
  if (!set_number(env, result, "inUseBytes", (double)mi.uordblks)) return NULL;
  if (!set_number(env, result, "freeBytes", (double)mi.fordblks)) return NULL;
#else
  CHECK(napi_get_null(env, &result));
#endif
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  CHECK(napi_create_function(env, "setThresholds", NAPI_AUTO_LENGTH, set_thresholds, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "setThresholds", fn));
  CHECK(napi_create_function(env, "stats", NAPI_AUTO_LENGTH, stats, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "stats", fn));
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
