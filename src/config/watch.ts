import { watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Calls `onChange` (debounced) when the config file may have changed. Watching the directory
 * catches ConfigMap updates, which swap a `..data` symlink rather than writing the file; a slow
 * poll covers file systems without inotify. The caller compares content, so spurious calls are cheap.
 */
export function watchConfigFile(path: string, onChange: () => void, options: { pollMs?: number; debounceMs?: number } = {}) {
  let timer: NodeJS.Timeout | undefined;
  const trigger = () => {
    clearTimeout(timer);
    timer = setTimeout(onChange, options.debounceMs ?? 200);
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, trigger);
    watcher.on('error', () => undefined);
  } catch {
    watcher = undefined;
  }
  const poll = setInterval(trigger, options.pollMs ?? 30_000);
  poll.unref();
  return {
    close() {
      clearTimeout(timer);
      clearInterval(poll);
      watcher?.close();
    },
  };
}
