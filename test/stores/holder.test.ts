import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileBackend } from '../../src/backends/file.js';
import type { BackendDefinition } from '../../src/backends/types.js';
import { parseProviderConfig, type ProviderConfig } from '../../src/config/load.js';
import { createMountHandler } from '../../src/mount/handler.js';
import type { MountInput } from '../../src/mount/input.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { holdStates } from '../../src/stores/holder.js';
import { createStores, type ProviderState } from '../../src/stores/stores.js';

/**
 * Store lifecycle across reloads: a replaced store closes when the last Mount holding it ends, not
 * on a timer. The stores are real file stores; the definition around them records each store's
 * close and can hold a fetch until the test lets it go, to keep a Mount in flight.
 */
const logger = pino({ level: 'silent' });
const metrics = createMetrics({ defaultMetrics: false });
const deps = { logger, metrics, now: Date.now };
let dir: string;

interface Gate {
  readonly opened: Promise<void>;
  open(): void;
}

function createGate(): Gate {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/** What happened to the stores, in order: `fetched root-a`, `closed root-a`, `mount ended`. */
let events: string[] = [];
/** While set, every fetch waits for it (after it has started). */
let gate: Gate | undefined;
let fetchStarted: Gate;

const recordingFile: BackendDefinition = {
  ...fileBackend,
  async create(settings, backendDeps) {
    const backend = await fileBackend.create(settings, backendDeps);
    const root = (settings.options as { root: string }).root;
    return {
      name: backend.name,
      async fetch(request, ctx) {
        fetchStarted.open();
        await gate?.opened;
        const result = await backend.fetch(request, ctx);
        events.push(`fetched ${root}`);
        return result;
      },
      async close() {
        events.push(`closed ${root}`);
        await backend.close();
      },
    };
  },
};

/** A config of file stores `name: root`, with the recording definition in place of the file one. */
async function configOf(stores: Record<string, string>): Promise<ProviderConfig> {
  const text = `stores:\n${Object.entries(stores)
    .map(([name, root]) => `  - {name: ${name}, backend: file, root: ${root}, cache: {ttl: 0}}\n`)
    .join('')}`;
  const parsed = await parseProviderConfig(text, dir);
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return { ...parsed.config, stores: parsed.config.stores.map((s) => ({ ...s, definition: recordingFile })) };
}

const input = (objects: string): MountInput => ({
  identity: { namespace: 'shop', serviceAccount: 'app', podName: 'p', podUid: 'u' },
  className: 'c',
  parameters: new Map([['objects', objects]]),
  tokens: new Map(),
  secrets: new Map(),
  defaultMode: 0o644,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'usp-holder-'));
  for (const root of ['root-a', 'root-b', 'root-c']) {
    await mkdir(join(dir, root));
    await writeFile(join(dir, root, 'x'), `from ${root}`);
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const closes = () => events.filter((e) => e.startsWith('closed'));
/** Closing a created client is asynchronous: let it run. */
const flush = () => new Promise((resolve) => setImmediate(resolve));

/** A Mount reading one object of each named store: a store's client exists only once it was used. */
async function use(handler: ReturnType<typeof setup>['handler'], ...stores: string[]): Promise<void> {
  const objects = stores.map((store, i) => `- {name: f${i}, store: ${store}, ref: x}`).join('\n');
  await handler.mount(input(objects), new AbortController().signal);
}

function setup(initial: ProviderState) {
  events = [];
  gate = undefined;
  fetchStarted = createGate();
  const states = holdStates(initial, logger);
  const handler = createMountHandler({ states, logger, metrics, now: Date.now, fallbackVersionKey: Buffer.alloc(32) });
  return { states, handler };
}

describe('replaced stores close when their Mounts have drained', () => {
  it('a slow Mount in flight across a reload completes against its store, which closes right after it ends', async () => {
    const a = await createStores(await configOf({ s: 'root-a' }), deps);
    const { states, handler } = setup(a);
    gate = createGate();
    const mounting = handler.mount(input('- {name: x, store: s, ref: x}'), new AbortController().signal).then((result) => {
      events.push('mount ended');
      return result;
    });
    await fetchStarted.opened;

    const b = await createStores(await configOf({ s: 'root-b' }), deps, states.current);
    expect(b.stores.get('s')).not.toBe(a.stores.get('s'));
    states.replace(b);
    // Longer than any event-loop turn a timer-based close would need: the store is still open.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(events).toEqual([]);

    gate.open();
    const result = await mounting;
    expect(result.files[0]!.contents.toString()).toBe('from root-a');
    expect(events).toEqual(['fetched root-a', 'closed root-a', 'mount ended']);

    // New Mounts use the new store; it stays open until shutdown.
    gate = undefined;
    const next = await handler.mount(input('- {name: x, store: s, ref: x}'), new AbortController().signal);
    expect(next.files[0]!.contents.toString()).toBe('from root-b');
    await states.close();
    expect(events.filter((e) => e.startsWith('closed'))).toEqual(['closed root-a', 'closed root-b']);
  });

  it('closes a replaced store at once when no Mount holds it', async () => {
    const { states, handler } = setup(await createStores(await configOf({ s: 'root-a' }), deps));
    await use(handler, 's');
    states.replace(await createStores(await configOf({ s: 'root-b' }), deps, states.current));
    await flush();
    expect(closes()).toEqual(['closed root-a']);
    await states.close();
  });

  it('keeps a store the new config still has, and closes only the one it dropped', async () => {
    const { states, handler } = setup(await createStores(await configOf({ kept: 'root-a', dropped: 'root-b' }), deps));
    await use(handler, 'kept', 'dropped');
    const next = await createStores(await configOf({ kept: 'root-a' }), deps, states.current);
    expect(next.stores.get('kept')).toBe(states.current.stores.get('kept'));
    states.replace(next);
    await flush();
    expect(closes()).toEqual(['closed root-b']);
    await states.close();
    expect(closes()).toEqual(['closed root-b', 'closed root-a']);
  });

  it('keeps a store an old Mount still uses when a later reload drops it', async () => {
    // A holds s (root-a); B keeps s and adds t; C drops s. A Mount that started under A still runs.
    const a = await createStores(await configOf({ s: 'root-a' }), deps);
    const { states, handler } = setup(a);
    gate = createGate();
    const mounting = handler.mount(input('- {name: x, store: s, ref: x}'), new AbortController().signal);
    await fetchStarted.opened;
    states.replace(await createStores(await configOf({ s: 'root-a', t: 'root-b' }), deps, states.current));
    states.replace(await createStores(await configOf({ t: 'root-b', u: 'root-c' }), deps, states.current));
    expect(events).toEqual([]);

    gate.open();
    expect((await mounting).files[0]!.contents.toString()).toBe('from root-a');
    expect(events).toEqual(['fetched root-a', 'closed root-a']);
    await use(handler, 't', 'u');
    await states.close();
    expect(closes().slice(1).sort()).toEqual(['closed root-b', 'closed root-c']);
  });

  it('releases the state of a Mount that fails, so its stores still close', async () => {
    const { states, handler } = setup(await createStores(await configOf({ s: 'root-a' }), deps));
    await use(handler, 's');
    const lease = states.acquire();
    await expect(handler.mount(input('- {name: x, store: nope, ref: x}'), new AbortController().signal)).rejects.toMatchObject({
      code: 'InvalidArgument',
    });
    states.replace(await createStores(await configOf({ s: 'root-b' }), deps, states.current));
    expect(closes()).toEqual([]);
    lease.release();
    lease.release();
    await flush();
    expect(closes()).toEqual(['closed root-a']);
    await states.close();
  });
});
