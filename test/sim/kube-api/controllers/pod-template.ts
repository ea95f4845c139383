/** Building a pod from a workload's template, with the defaults the apiserver would add. */
import {ownerReferenceTo, type Toleration} from '../objects.js'
import {type Dict, type KubeObject, type StoredObject, deepClone, randomSuffix} from '../types.js'

export function podFromTemplate(owner: StoredObject, extra: {nodeName?: string; tolerations?: Toleration[]; labels?: Record<string, string>} = {}): KubeObject {
  const template = (owner.spec?.template ?? {}) as Dict
  const spec = deepClone((template.spec ?? {}) as Dict)
  spec.restartPolicy ??= 'Always'
  spec.terminationGracePeriodSeconds ??= 30
  spec.dnsPolicy ??= 'ClusterFirst'
  spec.schedulerName ??= 'default-scheduler'
  spec.serviceAccountName ??= 'default'
  spec.containers ??= [{name: 'app', image: 'registry.k8s.io/pause:3.9'}]
  const tolerations = [...((spec.tolerations ?? []) as Toleration[])]
  for (const t of [
    ...(extra.tolerations ?? []),
    {key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300} as Toleration,
    {key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300} as Toleration,
  ]) {
    if (!tolerations.some((x) => x.key === t.key && x.effect === t.effect)) tolerations.push(t)
  }
  spec.tolerations = tolerations
  if (extra.nodeName) spec.nodeName = extra.nodeName
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `${owner.metadata.name}-${randomSuffix()}`,
      namespace: owner.metadata.namespace,
      labels: {...(template.metadata?.labels ?? {}), ...(extra.labels ?? {})},
      ...(template.metadata?.annotations ? {annotations: deepClone(template.metadata.annotations)} : {}),
      ownerReferences: [ownerReferenceTo(owner)],
    },
    spec,
    status: {phase: 'Pending', qosClass: 'BestEffort'},
  }
}
