/** Why the driver would reject `path` as a file path in the mount, or undefined when it is fine. */
export function checkDriverPath(path: string): string | undefined {
  if (path === '') return 'must not be empty';
  if (path.length > 4096) return 'longer than 4096 characters';
  if (path.startsWith('/')) return 'must be a relative path';
  if (path.includes('\0')) return 'must not contain NUL';
  if (path.includes('\\')) return 'must not contain backslashes';
  const elements = path.split('/');
  if (elements.some((e) => e === '')) return 'must not have empty elements (a//b, a/ or /a)';
  if (elements.some((e) => e === '.')) return 'must not have "." elements';
  if (elements.some((e) => e === '..')) return 'must not have ".." elements';
  if (elements.some((e) => e.length > 255)) return 'has an element longer than 255 characters';
  if (elements[0]!.startsWith('..')) return 'must not start with ".." (reserved by the driver)';
  return undefined;
}
