/**
 * API versions Kubernetes stopped serving, from 1.22 on, with the version to use instead.
 * Source: the Deprecated API Migration Guide,
 * https://kubernetes.io/docs/reference/using-api/deprecation-guide/ (its last removal is 1.32).
 * Kept as data: a new minor's removals are one more block here.
 */
export interface RemovedApi {
  group: string
  version: string
  /** Plural, as in URLs and in apiserver_requested_deprecated_apis. */
  resource: string
  kind: string
  /** The minor that no longer serves it, as the metric's removed_release: `1.25`. */
  removedIn: string
  /** The apiVersion to move to; absent when the kind itself went away. */
  replacement?: string
  /** What to do instead when there is no replacement. */
  advice?: string
  /**
   * Where objects of this kind can be listed on a cluster that still serves the removed version
   * (the replacement, unless that is newer than the clusters it applies to). Absent: the kind is
   * never stored (reviews) or too transient to matter (events).
   */
  listAs?: string
}

type Block = {removedIn: string; apis: Array<Omit<RemovedApi, 'removedIn' | 'group' | 'version'> & {apiVersion: string}>}

const V1_22 = (apiVersion: string, kind: string, resource: string, replacement: string, stored = true) => ({apiVersion, kind, resource, replacement, ...(stored ? {listAs: replacement} : {})})

const BLOCKS: Block[] = [
  {
    removedIn: '1.22',
    apis: [
      V1_22('admissionregistration.k8s.io/v1beta1', 'MutatingWebhookConfiguration', 'mutatingwebhookconfigurations', 'admissionregistration.k8s.io/v1'),
      V1_22('admissionregistration.k8s.io/v1beta1', 'ValidatingWebhookConfiguration', 'validatingwebhookconfigurations', 'admissionregistration.k8s.io/v1'),
      V1_22('apiextensions.k8s.io/v1beta1', 'CustomResourceDefinition', 'customresourcedefinitions', 'apiextensions.k8s.io/v1'),
      V1_22('apiregistration.k8s.io/v1beta1', 'APIService', 'apiservices', 'apiregistration.k8s.io/v1'),
      V1_22('authentication.k8s.io/v1beta1', 'TokenReview', 'tokenreviews', 'authentication.k8s.io/v1', false),
      V1_22('authorization.k8s.io/v1beta1', 'SubjectAccessReview', 'subjectaccessreviews', 'authorization.k8s.io/v1', false),
      V1_22('authorization.k8s.io/v1beta1', 'LocalSubjectAccessReview', 'localsubjectaccessreviews', 'authorization.k8s.io/v1', false),
      V1_22('authorization.k8s.io/v1beta1', 'SelfSubjectAccessReview', 'selfsubjectaccessreviews', 'authorization.k8s.io/v1', false),
      V1_22('certificates.k8s.io/v1beta1', 'CertificateSigningRequest', 'certificatesigningrequests', 'certificates.k8s.io/v1'),
      V1_22('coordination.k8s.io/v1beta1', 'Lease', 'leases', 'coordination.k8s.io/v1'),
      V1_22('extensions/v1beta1', 'Ingress', 'ingresses', 'networking.k8s.io/v1'),
      V1_22('networking.k8s.io/v1beta1', 'Ingress', 'ingresses', 'networking.k8s.io/v1'),
      V1_22('networking.k8s.io/v1beta1', 'IngressClass', 'ingressclasses', 'networking.k8s.io/v1'),
      V1_22('rbac.authorization.k8s.io/v1beta1', 'ClusterRole', 'clusterroles', 'rbac.authorization.k8s.io/v1'),
      V1_22('rbac.authorization.k8s.io/v1beta1', 'ClusterRoleBinding', 'clusterrolebindings', 'rbac.authorization.k8s.io/v1'),
      V1_22('rbac.authorization.k8s.io/v1beta1', 'Role', 'roles', 'rbac.authorization.k8s.io/v1'),
      V1_22('rbac.authorization.k8s.io/v1beta1', 'RoleBinding', 'rolebindings', 'rbac.authorization.k8s.io/v1'),
      V1_22('scheduling.k8s.io/v1beta1', 'PriorityClass', 'priorityclasses', 'scheduling.k8s.io/v1'),
      V1_22('storage.k8s.io/v1beta1', 'CSIDriver', 'csidrivers', 'storage.k8s.io/v1'),
      V1_22('storage.k8s.io/v1beta1', 'CSINode', 'csinodes', 'storage.k8s.io/v1'),
      V1_22('storage.k8s.io/v1beta1', 'StorageClass', 'storageclasses', 'storage.k8s.io/v1'),
      V1_22('storage.k8s.io/v1beta1', 'VolumeAttachment', 'volumeattachments', 'storage.k8s.io/v1'),
    ],
  },
  {
    removedIn: '1.25',
    apis: [
      {apiVersion: 'batch/v1beta1', kind: 'CronJob', resource: 'cronjobs', replacement: 'batch/v1', listAs: 'batch/v1'},
      {apiVersion: 'discovery.k8s.io/v1beta1', kind: 'EndpointSlice', resource: 'endpointslices', replacement: 'discovery.k8s.io/v1', listAs: 'discovery.k8s.io/v1'},
      {apiVersion: 'events.k8s.io/v1beta1', kind: 'Event', resource: 'events', replacement: 'events.k8s.io/v1'},
      {apiVersion: 'autoscaling/v2beta1', kind: 'HorizontalPodAutoscaler', resource: 'horizontalpodautoscalers', replacement: 'autoscaling/v2', listAs: 'autoscaling/v2'},
      {apiVersion: 'policy/v1beta1', kind: 'PodDisruptionBudget', resource: 'poddisruptionbudgets', replacement: 'policy/v1', listAs: 'policy/v1'},
      {
        apiVersion: 'policy/v1beta1',
        kind: 'PodSecurityPolicy',
        resource: 'podsecuritypolicies',
        advice: 'move to Pod Security Admission (namespace labels pod-security.kubernetes.io/*) and delete the PodSecurityPolicy',
        listAs: 'policy/v1beta1',
      },
      {apiVersion: 'node.k8s.io/v1beta1', kind: 'RuntimeClass', resource: 'runtimeclasses', replacement: 'node.k8s.io/v1', listAs: 'node.k8s.io/v1'},
    ],
  },
  {
    removedIn: '1.26',
    apis: [
      {apiVersion: 'flowcontrol.apiserver.k8s.io/v1beta1', kind: 'FlowSchema', resource: 'flowschemas', replacement: 'flowcontrol.apiserver.k8s.io/v1beta3', listAs: 'flowcontrol.apiserver.k8s.io/v1beta2'},
      {apiVersion: 'flowcontrol.apiserver.k8s.io/v1beta1', kind: 'PriorityLevelConfiguration', resource: 'prioritylevelconfigurations', replacement: 'flowcontrol.apiserver.k8s.io/v1beta3', listAs: 'flowcontrol.apiserver.k8s.io/v1beta2'},
      {apiVersion: 'autoscaling/v2beta2', kind: 'HorizontalPodAutoscaler', resource: 'horizontalpodautoscalers', replacement: 'autoscaling/v2', listAs: 'autoscaling/v2'},
    ],
  },
  {
    removedIn: '1.27',
    apis: [{apiVersion: 'storage.k8s.io/v1beta1', kind: 'CSIStorageCapacity', resource: 'csistoragecapacities', replacement: 'storage.k8s.io/v1', listAs: 'storage.k8s.io/v1'}],
  },
  {
    removedIn: '1.29',
    apis: [
      {apiVersion: 'flowcontrol.apiserver.k8s.io/v1beta2', kind: 'FlowSchema', resource: 'flowschemas', replacement: 'flowcontrol.apiserver.k8s.io/v1', listAs: 'flowcontrol.apiserver.k8s.io/v1beta3'},
      {apiVersion: 'flowcontrol.apiserver.k8s.io/v1beta2', kind: 'PriorityLevelConfiguration', resource: 'prioritylevelconfigurations', replacement: 'flowcontrol.apiserver.k8s.io/v1', listAs: 'flowcontrol.apiserver.k8s.io/v1beta3'},
    ],
  },
  {
    removedIn: '1.32',
    apis: [
      {apiVersion: 'flowcontrol.apiserver.k8s.io/v1beta3', kind: 'FlowSchema', resource: 'flowschemas', replacement: 'flowcontrol.apiserver.k8s.io/v1', listAs: 'flowcontrol.apiserver.k8s.io/v1'},
      {apiVersion: 'flowcontrol.apiserver.k8s.io/v1beta3', kind: 'PriorityLevelConfiguration', resource: 'prioritylevelconfigurations', replacement: 'flowcontrol.apiserver.k8s.io/v1', listAs: 'flowcontrol.apiserver.k8s.io/v1'},
    ],
  },
]

export const REMOVED_APIS_SOURCE = 'https://kubernetes.io/docs/reference/using-api/deprecation-guide/'

export const REMOVED_APIS: readonly RemovedApi[] = BLOCKS.flatMap((block) =>
  block.apis.map(({apiVersion, ...api}) => {
    const [group, version] = splitApiVersion(apiVersion)
    return {group, version, removedIn: block.removedIn, ...api}
  }),
)

export function splitApiVersion(apiVersion: string): [group: string, version: string] {
  const slash = apiVersion.indexOf('/')
  return slash < 0 ? ['', apiVersion] : [apiVersion.slice(0, slash), apiVersion.slice(slash + 1)]
}

/** `1.25` → 25; the minors compared are all 1.x. */
export function minorOfRelease(release: string): number {
  const match = /^v?1\.(\d+)/.exec(release)
  return match ? Number(match[1]) : Number.NaN
}

/** The removal of this apiVersion and kind, if one is listed. */
export function removalOf(apiVersion: string, kind: string): RemovedApi | undefined {
  const [group, version] = splitApiVersion(apiVersion)
  return REMOVED_APIS.find((api) => api.group === group && api.version === version && api.kind === kind)
}

/** The removal of this group/version/resource (the metric's labels), if one is listed. */
export function removalOfResource(group: string, version: string, resource: string): RemovedApi | undefined {
  return REMOVED_APIS.find((api) => api.group === group && api.version === version && api.resource === resource)
}

/** Removals in minors after `currentMinor` up to and including `targetMinor`. */
export function removedBetween(currentMinor: number, targetMinor: number): RemovedApi[] {
  return REMOVED_APIS.filter((api) => {
    const minor = minorOfRelease(api.removedIn)
    return minor > currentMinor && minor <= targetMinor
  })
}

/** What the user moves to: the replacement apiVersion, or the advice when the kind is gone. */
export function useInstead(api: Pick<RemovedApi, 'replacement' | 'advice' | 'kind'>): string {
  return api.replacement ? `${api.replacement} ${api.kind}` : (api.advice ?? 'see the deprecation guide')
}
