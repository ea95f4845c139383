/**
 * What the simulated apiserver serves: built-in resources and those added by
 * CustomResourceDefinitions, and the discovery documents client-node reads to map a kind to a
 * URL (KubernetesObjectApi).
 */
import type {Dict, KubeObject} from './types.js'

export interface ResourceType {
  group: string
  version: string
  /** Plural, as in URLs: `pods`, `poddisruptionbudgets`. */
  resource: string
  singular: string
  kind: string
  listKind: string
  namespaced: boolean
  shortNames: string[]
  /** Served subresources: `status` makes `.status` writable only there; `eviction` for pods. */
  subresources: string[]
  builtin: boolean
  /** openAPIV3Schema of a custom resource version. */
  schema?: Dict
  /** The apiserver clears `.status` on create through the API (most kinds with a status subresource). */
  resetStatusOnCreate: boolean
  /** PUT without metadata.resourceVersion is refused (custom resources). */
  requireResourceVersionOnUpdate: boolean
  /** True for the version objects are stored in (a CRD may serve several). */
  storage: boolean
  /**
   * A deprecated built-in version: the minor (`1.25`) from which the apiserver no longer serves
   * it, and the version to use instead (the text of the apiserver's Warning header).
   */
  removedIn?: string
  replacement?: string
}

/** Store key shared by every version of one resource. */
export function resourceKey(rt: Pick<ResourceType, 'group' | 'resource'>): string {
  return `${rt.group}/${rt.resource}`
}

export function apiVersionOf(rt: Pick<ResourceType, 'group' | 'version'>): string {
  return rt.group ? `${rt.group}/${rt.version}` : rt.version
}

export function hasStatus(rt: ResourceType): boolean {
  return rt.subresources.includes('status')
}

interface BuiltinSpec {
  gv: string
  resource: string
  kind: string
  namespaced: boolean
  shortNames?: string[]
  sub?: string[]
  resetStatus?: boolean
  removedIn?: string
  replacement?: string
}

const builtinSpecs: BuiltinSpec[] = [
  {gv: 'v1', resource: 'namespaces', kind: 'Namespace', namespaced: false, shortNames: ['ns'], sub: ['status']},
  {gv: 'v1', resource: 'nodes', kind: 'Node', namespaced: false, shortNames: ['no'], sub: ['status']},
  {gv: 'v1', resource: 'pods', kind: 'Pod', namespaced: true, shortNames: ['po'], sub: ['status', 'eviction'], resetStatus: true},
  {gv: 'v1', resource: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true, shortNames: ['sa']},
  {gv: 'v1', resource: 'configmaps', kind: 'ConfigMap', namespaced: true, shortNames: ['cm']},
  {gv: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true},
  {gv: 'v1', resource: 'services', kind: 'Service', namespaced: true, shortNames: ['svc'], sub: ['status']},
  {gv: 'v1', resource: 'events', kind: 'Event', namespaced: true, shortNames: ['ev']},
  {gv: 'policy/v1', resource: 'poddisruptionbudgets', kind: 'PodDisruptionBudget', namespaced: true, shortNames: ['pdb'], sub: ['status'], resetStatus: true},
  {gv: 'apps/v1', resource: 'daemonsets', kind: 'DaemonSet', namespaced: true, shortNames: ['ds'], sub: ['status'], resetStatus: true},
  {gv: 'apps/v1', resource: 'replicasets', kind: 'ReplicaSet', namespaced: true, shortNames: ['rs'], sub: ['status'], resetStatus: true},
  {gv: 'apps/v1', resource: 'deployments', kind: 'Deployment', namespaced: true, shortNames: ['deploy'], sub: ['status'], resetStatus: true},
  {gv: 'apps/v1', resource: 'statefulsets', kind: 'StatefulSet', namespaced: true, shortNames: ['sts'], sub: ['status'], resetStatus: true},
  {gv: 'coordination.k8s.io/v1', resource: 'leases', kind: 'Lease', namespaced: true},
  {gv: 'batch/v1', resource: 'jobs', kind: 'Job', namespaced: true, sub: ['status'], resetStatus: true},
  {gv: 'rbac.authorization.k8s.io/v1', resource: 'clusterroles', kind: 'ClusterRole', namespaced: false},
  {gv: 'rbac.authorization.k8s.io/v1', resource: 'clusterrolebindings', kind: 'ClusterRoleBinding', namespaced: false},
  {gv: 'rbac.authorization.k8s.io/v1', resource: 'roles', kind: 'Role', namespaced: true},
  {gv: 'rbac.authorization.k8s.io/v1', resource: 'rolebindings', kind: 'RoleBinding', namespaced: true},
  {gv: 'apiextensions.k8s.io/v1', resource: 'customresourcedefinitions', kind: 'CustomResourceDefinition', namespaced: false, shortNames: ['crd', 'crds'], sub: ['status'], resetStatus: true},
  {gv: 'batch/v1', resource: 'cronjobs', kind: 'CronJob', namespaced: true, shortNames: ['cj'], sub: ['status'], resetStatus: true},
  {gv: 'flowcontrol.apiserver.k8s.io/v1', resource: 'flowschemas', kind: 'FlowSchema', namespaced: false, sub: ['status']},
  {gv: 'flowcontrol.apiserver.k8s.io/v1', resource: 'prioritylevelconfigurations', kind: 'PriorityLevelConfiguration', namespaced: false, sub: ['status']},
  // Deprecated versions a 1.2x apiserver still serves (the deprecation guide's removals).
  {gv: 'policy/v1beta1', resource: 'poddisruptionbudgets', kind: 'PodDisruptionBudget', namespaced: true, shortNames: ['pdb'], sub: ['status'], resetStatus: true, removedIn: '1.25', replacement: 'policy/v1'},
  {gv: 'batch/v1beta1', resource: 'cronjobs', kind: 'CronJob', namespaced: true, shortNames: ['cj'], sub: ['status'], resetStatus: true, removedIn: '1.25', replacement: 'batch/v1'},
  {gv: 'flowcontrol.apiserver.k8s.io/v1beta3', resource: 'flowschemas', kind: 'FlowSchema', namespaced: false, sub: ['status'], removedIn: '1.32', replacement: 'flowcontrol.apiserver.k8s.io/v1'},
  {gv: 'flowcontrol.apiserver.k8s.io/v1beta3', resource: 'prioritylevelconfigurations', kind: 'PriorityLevelConfiguration', namespaced: false, sub: ['status'], removedIn: '1.32', replacement: 'flowcontrol.apiserver.k8s.io/v1'},
]

function builtin(spec: BuiltinSpec): ResourceType {
  const [group, version] = spec.gv.includes('/') ? spec.gv.split('/') : ['', spec.gv]
  return {
    group,
    version,
    resource: spec.resource,
    singular: spec.kind.toLowerCase(),
    kind: spec.kind,
    listKind: `${spec.kind}List`,
    namespaced: spec.namespaced,
    shortNames: spec.shortNames ?? [],
    subresources: spec.sub ?? [],
    builtin: true,
    resetStatusOnCreate: spec.resetStatus ?? false,
    requireResourceVersionOnUpdate: false,
    storage: spec.removedIn === undefined,
    ...(spec.removedIn ? {removedIn: spec.removedIn, replacement: spec.replacement} : {}),
  }
}

function minorOf(version: string): number {
  return Number(version.split('.')[1])
}

const verbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']

/** The resource types one CRD object defines (one per served version). */
export function typesFromCrd(crd: KubeObject): ResourceType[] {
  const spec = crd.spec ?? {}
  const names = spec.names ?? {}
  return ((spec.versions ?? []) as Dict[])
    .filter((v) => v.served !== false)
    .map((v) => ({
      group: String(spec.group),
      version: String(v.name),
      resource: String(names.plural),
      singular: String(names.singular ?? String(names.kind).toLowerCase()),
      kind: String(names.kind),
      listKind: String(names.listKind ?? `${names.kind}List`),
      namespaced: spec.scope !== 'Cluster',
      shortNames: (names.shortNames ?? []) as string[],
      subresources: v.subresources?.status !== undefined ? ['status'] : [],
      builtin: false,
      schema: v.schema?.openAPIV3Schema as Dict | undefined,
      resetStatusOnCreate: v.subresources?.status !== undefined,
      requireResourceVersionOnUpdate: true,
      storage: v.storage === true,
    }))
}

export class ResourceRegistry {
  private typesAll: ResourceType[] = builtinSpecs.map(builtin)

  /** `servedMinor`: the apiserver's minor now; versions removed at or before it are not served. */
  constructor(private readonly servedMinor: () => number = () => 31) {}

  private askingMinor = false

  private get types(): ResourceType[] {
    // The version is read from Node objects, whose lookup comes back here: no deprecated kind matters for it.
    if (this.askingMinor) return this.typesAll.filter((t) => t.removedIn === undefined)
    this.askingMinor = true
    let minor: number
    try {
      minor = this.servedMinor()
    } finally {
      this.askingMinor = false
    }
    return this.typesAll.filter((t) => t.removedIn === undefined || minor < minorOf(t.removedIn))
  }

  all(): ResourceType[] {
    return [...this.types]
  }

  /** Replaces whatever the CRD named `crdName` served before with `types`. */
  setCustom(crdName: string, types: ResourceType[]): void {
    this.typesAll = [...this.typesAll.filter((t) => t.builtin || `${t.resource}.${t.group}` !== crdName), ...types]
  }

  byPath(group: string, version: string, resource: string): ResourceType | undefined {
    return this.types.find((t) => t.group === group && t.version === version && t.resource === resource)
  }

  byKind(apiVersion: string, kind: string): ResourceType | undefined {
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion]
    return this.types.find((t) => t.group === group && t.version === version && t.kind === kind)
  }

  /** The version objects of this resource are stored in. */
  storageType(group: string, resource: string): ResourceType | undefined {
    const all = this.types.filter((t) => t.group === group && t.resource === resource)
    return all.find((t) => t.storage) ?? all[0]
  }

  /**
   * kubectl-style reference: `pods`, `pod`, `po`, `Pod`, `deployments.apps`, `backups.velero.io`,
   * `plans.upgrade.cattle.io`. Throws for an unknown name, so a typo in a test fails loudly.
   */
  resolve(ref: string): ResourceType {
    const lower = ref.toLowerCase()
    const dot = lower.indexOf('.')
    const name = dot < 0 ? lower : lower.slice(0, dot)
    const group = dot < 0 ? undefined : lower.slice(dot + 1)
    const candidates = this.types.filter(
      (t) =>
        (group === undefined || t.group === group) &&
        (t.resource === name || t.singular === name || t.kind.toLowerCase() === name || t.shortNames.includes(name)),
    )
    const pick = candidates.find((t) => t.storage && t.group === '') ?? candidates.find((t) => t.storage) ?? candidates[0]
    if (!pick) throw new Error(`simulated API: unknown resource "${ref}"`)
    return pick
  }

  groups(): Array<{name: string; versions: string[]}> {
    const out = new Map<string, string[]>()
    for (const t of this.types) {
      if (t.group === '') continue
      const vs = out.get(t.group) ?? []
      if (!vs.includes(t.version)) vs.push(t.version)
      out.set(t.group, vs)
    }
    return [...out].map(([name, versions]) => ({name, versions}))
  }

  /** `/api/v1` or `/apis/<group>/<version>`: an APIResourceList, subresources included. */
  resourceList(group: string, version: string): Dict | undefined {
    const types = this.types.filter((t) => t.group === group && t.version === version)
    if (types.length === 0) return undefined
    const resources: Dict[] = []
    for (const t of types) {
      const entry: Dict = {name: t.resource, singularName: t.singular, namespaced: t.namespaced, kind: t.kind, verbs}
      if (t.shortNames.length > 0) entry.shortNames = t.shortNames
      resources.push(entry)
      for (const sub of t.subresources) {
        if (sub === 'status') {
          resources.push({name: `${t.resource}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update']})
        } else if (sub === 'eviction') {
          resources.push({name: `${t.resource}/eviction`, singularName: '', namespaced: t.namespaced, group: 'policy', version: 'v1', kind: 'Eviction', verbs: ['create']})
        }
      }
    }
    return {kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources}
  }

  apiGroup(name: string): Dict | undefined {
    const g = this.groups().find((x) => x.name === name)
    if (!g) return undefined
    const versions = g.versions.map((v) => ({groupVersion: `${name}/${v}`, version: v}))
    return {kind: 'APIGroup', apiVersion: 'v1', name, versions, preferredVersion: versions[0]}
  }

  apiGroupList(): Dict {
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: this.groups().map((g) => this.apiGroup(g.name)!).map(({kind: _k, apiVersion: _a, ...rest}) => rest),
    }
  }
}
