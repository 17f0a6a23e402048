/**
 * The provider config and SecretProviderClass texts that tests write, built as data and serialised
 * with the `yaml` package: quoting (`"{namespace}/**"`, `""`, `"0400"`) and indentation are its
 * job, not the test's. Deliberately malformed YAML stays an inline string in the test that needs it.
 *
 *   providerConfigYaml({ defaultStore: 'files', stores: [fileStore('files', '../secrets', { cache: { ttl: 0 } })] })
 *   classYaml({ objects: [{ name: 'db/password', ref: 'shop/password' }] })
 */
import { stringify } from 'yaml';

/** `500ms`, `30s`, `5m`, or a number of seconds, as the config file takes them. */
export type Duration = string | number;

export interface AccessMatchYaml {
  readonly namespaces?: readonly string[];
  readonly serviceAccounts?: readonly string[];
  readonly refs?: readonly string[];
}
export type AccessRuleYaml = { readonly allow: AccessMatchYaml } | { readonly deny: AccessMatchYaml };

/** One entry of `stores`: the fields every store has, `backend`, and that backend's own options. */
export interface StoreYaml {
  readonly name: string;
  readonly backend: string;
  readonly cache?: { readonly ttl?: Duration; readonly maxEntries?: number; readonly maxBytes?: number; readonly staleIfError?: Duration };
  readonly retry?: { readonly attempts?: number; readonly baseDelay?: Duration; readonly maxDelay?: Duration };
  readonly breaker?: { readonly failures?: number; readonly openFor?: Duration };
  readonly access?: readonly AccessRuleYaml[];
  readonly concurrency?: number;
  readonly [option: string]: unknown;
}

/** A store entry's fields other than name and backend. */
export type StoreFields = Omit<StoreYaml, 'name' | 'backend'>;

export interface ProviderConfigYaml {
  readonly stores: readonly StoreYaml[];
  readonly defaultStore?: string;
  /** Defaults to a fixed test key, so versions are stable across providers of one test. */
  readonly versionKey?: string;
  readonly versionKeyFile?: string;
  readonly limits?: { readonly maxObjects?: number; readonly mountTimeout?: Duration };
}

/** The test key used when a config names none. */
const testVersionKey = 'test-version-key-0123456789';

/** The provider's config file. */
export function providerConfigYaml(config: ProviderConfigYaml): string {
  const { versionKey = config.versionKeyFile === undefined ? testVersionKey : undefined, ...rest } = config;
  return toYaml({ ...(versionKey !== undefined && { versionKey }), ...rest });
}

/** A `file` store over `root` (relative to the config file's directory, or absolute). */
export function fileStore(name: string, root: string, fields: StoreFields = {}): StoreYaml {
  return { name, backend: 'file', root, ...fields };
}

/** One entry of a class's `objects`: the common fields, and a backend's own object fields. */
export interface ObjectYaml {
  readonly name: string;
  readonly ref: string;
  readonly store?: string;
  readonly key?: string;
  readonly select?: string;
  readonly decode?: string;
  readonly expand?: string;
  readonly mode?: string | number;
  readonly optional?: boolean;
  readonly mount?: boolean;
  readonly [field: string]: unknown;
}

/** One entry of a class's `templates`. */
export interface TemplateYaml {
  readonly name: string;
  readonly template: string;
  readonly mode?: string | number;
}

/** The text of the `objects` parameter. */
export function objectsYaml(objects: readonly ObjectYaml[]): string {
  return toYaml(objects);
}

/** The text of the `templates` parameter. */
export function templatesYaml(templates: readonly TemplateYaml[]): string {
  return toYaml(templates);
}

export interface ClassOptions {
  /** A list, or the parameter's text as is (for deliberately odd YAML). */
  readonly objects: readonly ObjectYaml[] | string;
  readonly templates?: readonly TemplateYaml[] | string;
  readonly name?: string;
  readonly namespace?: string;
  /** Other class parameters (`role`, ...): the driver passes every one as a string. */
  readonly parameters?: Readonly<Record<string, string>>;
  /** The driver's `spec.secretObjects` (sync to Kubernetes Secrets). */
  readonly secretObjects?: readonly unknown[];
}

/** A SecretProviderClass for our provider, as an object (for CRD schema checks and driver replays). */
export function classDoc(options: ClassOptions) {
  const text = <T>(value: readonly T[] | string) => (typeof value === 'string' ? value : toYaml(value));
  return {
    apiVersion: 'secrets-store.csi.x-k8s.io/v1',
    kind: 'SecretProviderClass',
    metadata: { name: options.name ?? 'shop', namespace: options.namespace ?? 'shop' },
    spec: {
      provider: 'universal',
      parameters: {
        ...options.parameters,
        objects: text(options.objects),
        ...(options.templates !== undefined && { templates: text(options.templates) }),
      },
      ...(options.secretObjects !== undefined && { secretObjects: options.secretObjects }),
    },
  };
}

/** The SecretProviderClass file `usp render`, `usp validate` and `usp mount` read. */
export function classYaml(options: ClassOptions): string {
  return toYaml(classDoc(options));
}

/** No anchors or aliases, which the provider refuses, even when a test reuses one object. */
function toYaml(value: unknown): string {
  return stringify(value, { aliasDuplicateObjects: false });
}
