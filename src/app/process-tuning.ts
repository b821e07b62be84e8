/**
 * Memory settings for a coffer process, applied once at start-up by the CLI (every command,
 * `serve` and `worker` included). Why: at the peak of a large first backup the process held
 * 320-330 MB, of which only about 60 MB were live buffers (docs/backup-performance.md,
 * "Memory"). The rest was the C allocator keeping freed chunk buffers for the engine threads,
 * and V8 growing the main thread's young generation and old-generation limit far past what
 * it had live. Both are defaults meant for throughput of short-lived allocations that a backup
 * does not have; set here they cost no measurable time (docs/benchmarks.md).
 *
 * - glibc: a fixed mmap threshold (buffers from 256 KiB up are mapped, and unmapped when freed)
 *   and a fixed trim threshold (an arena hands back what is free at its top). The environment
 *   variables glibc reads (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) cannot be set
 *   from inside Node, which is why this is a small native addon (native/malloc-tuning).
 * - V8: the young generation does not grow (`--semi-space-growth-factor=1`) and the old
 *   generation's limit grows by 30 % over what survived a full collection rather than up to
 *   4x (`--heap-growing-percent`). Both flags are read at each collection, so setting them
 *   after start-up takes effect (and again after each worker thread starts: see below); the
 *   worker threads' own young generation is capped when they start (engine/parallel/blob-pool.ts).
 *
 * An operator who sets either glibc variable, or COFFER_MEMORY_TUNING=off, keeps their own.
 *
 * A backup or restore run in the foreground also has V8 wait longer before it optimises a
 * function (tuneCompilerForOneShot). Why: such a command lives for a second or a few, and V8's
 * default budget, made for long-lived programs, had TurboFan compile about 250 functions of a
 * small first backup on the V8 platform's threads, which take the two cores the engine threads
 * need; in a backup with no changes V8's own threads used about 0.5 s of the command's 1.5 s of
 * CPU. At 16x, backups with few changes took about a tenth of a second less and nothing else
 * measured moved beyond the noise; V8's baseline compiler alone (`--max-opt=1`) made the small
 * tree's 1 % backup slower, since its hot code repays TurboFan (figures: docs/backup-performance.md,
 * "Start-up"). `serve` and `worker` keep V8's defaults: they live long enough to repay every
 * compilation. COFFER_JIT_TUNING=off keeps them for every command.
 */
import { setFlagsFromString } from 'node:v8';
import { loadNativeAddon } from '../platform/native-addons.js';

/** Allocations from this size up are mapped on their own (glibc's M_MMAP_THRESHOLD). */
export const MMAP_THRESHOLD_BYTES = 256 * 1024;
/** Free memory at the top of an arena past this is returned (glibc's M_TRIM_THRESHOLD). */
export const TRIM_THRESHOLD_BYTES = 256 * 1024;
/** Flags of V8's that are read at every collection (see the module comment). */
export const V8_FLAGS = ['--semi-space-growth-factor=1', '--heap-growing-percent=30'];
/**
 * V8's interrupt budget (bytecodes run before a function's tier is reconsidered) for a one-shot
 * backup or restore: 16 times Node 20's default of 67,584 (see the module comment).
 */
export const ONE_SHOT_V8_FLAGS = ['--interrupt-budget=1081344'];

/** The C allocator's totals over all arenas (glibc's mallinfo2). */
export interface AllocatorStats {
  arenaBytes: number;
  mmappedBytes: number;
  mmappedBlocks: number;
  inUseBytes: number;
  freeBytes: number;
}

interface MallocTuningAddon {
  setThresholds(mmapThreshold: number, trimThreshold: number): boolean;
  stats(): AllocatorStats | null;
}

/** What tuneProcessMemory did to the C allocator. */
export type AllocatorTuning =
  | 'tuned'
  /** The operator set a glibc variable or COFFER_MEMORY_TUNING=off. */
  | 'left to the operator'
  /** Not glibc (musl, macOS): nothing to tune. */
  | 'not glibc'
  /** The addon is not built (`npm run build:native`): coffer works, with more memory. */
  | 'addon missing';

export interface TuningOutcome {
  allocator: AllocatorTuning;
  v8Flags: string[];
}

let addon: MallocTuningAddon | null | undefined;

/** The addon, or null when it was not built. */
export function mallocTuningAddon(): MallocTuningAddon | null {
  if (addon === undefined) addon = loadNativeAddon<MallocTuningAddon>('malloc-tuning', 'malloc_tuning');
  return addon;
}

/** The C allocator's totals now, or null without the addon or glibc. */
export function allocatorStats(): AllocatorStats | null {
  return mallocTuningAddon()?.stats() ?? null;
}

/** The V8 flags this process set, in order; set again as each worker thread comes online. */
const keptV8Flags: string[] = [];

function keepV8Flags(flags: readonly string[]): void {
  for (const flag of flags) setFlagsFromString(flag);
  // A worker thread, as it starts, sets V8's flags back to the command line's (measured on
  // Node 20: the main thread's young generation grew to 32 MiB once the engine threads were
  // up), so they are set again when each one is online.
  if (keptV8Flags.length === 0) {
    process.on('worker', (worker) =>
      worker.once('online', () => {
        for (const flag of keptV8Flags) setFlagsFromString(flag);
      }),
    );
  }
  keptV8Flags.push(...flags);
}

let applied: TuningOutcome | null = null;

/** Applies the settings above, once per process; later calls return the first outcome. */
export function tuneProcessMemory(env: NodeJS.ProcessEnv = process.env): TuningOutcome {
  if (applied) return applied;
  if (env.COFFER_MEMORY_TUNING === 'off')
    return (applied = { allocator: 'left to the operator', v8Flags: [] });
  keepV8Flags(V8_FLAGS);
  applied = { allocator: tuneAllocator(env), v8Flags: V8_FLAGS };
  return applied;
}

let compilerTuned: readonly string[] | null = null;

/**
 * Sets ONE_SHOT_V8_FLAGS for a command that lives seconds, not hours (a backup or restore in
 * the foreground); once per process. Returns the flags set (none with COFFER_JIT_TUNING=off).
 */
export function tuneCompilerForOneShot(env: NodeJS.ProcessEnv = process.env): readonly string[] {
  if (compilerTuned) return compilerTuned;
  if (env.COFFER_JIT_TUNING === 'off') return (compilerTuned = []);
  keepV8Flags(ONE_SHOT_V8_FLAGS);
  return (compilerTuned = ONE_SHOT_V8_FLAGS);
}

function tuneAllocator(env: NodeJS.ProcessEnv): AllocatorTuning {
  if (env.MALLOC_MMAP_THRESHOLD_ !== undefined || env.MALLOC_TRIM_THRESHOLD_ !== undefined) {
    return 'left to the operator';
  }
  const native = mallocTuningAddon();
  if (!native) return 'addon missing';
  return native.setThresholds(MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES) ? 'tuned' : 'not glibc';
}
