/**
 * A kubeadm control plane as the API shows it: the cluster version kubeadm keeps in its
 * ConfigMap, and per node the version its control-plane static pods run (the image tag of
 * kube-apiserver and friends, mirrored into kube-system by the kubelet).
 */
import type {V1Pod} from '@kubernetes/client-node'
import {parse} from 'yaml'

import type {PackageDistribution} from '../distributions/index.js'
import type {KubeClients} from './client.js'
import {isNotFound} from './api-errors.js'
import {waitFor} from './wait.js'

const CONTROL_PLANE_PODS = 'tier=control-plane'

/** `kubernetesVersion` of kubeadm's ClusterConfiguration; undefined when the ConfigMap is missing. */
export async function clusterKubernetesVersion(kube: KubeClients, distribution: PackageDistribution): Promise<string | undefined> {
  const {namespace, name, key} = distribution.clusterConfigMap
  try {
    const configMap = await kube.core.readNamespacedConfigMap({namespace, name})
    const text = configMap.data?.[key]
    const version = text ? (parse(text) as {kubernetesVersion?: unknown} | null)?.kubernetesVersion : undefined
    return typeof version === 'string' ? version : undefined
  } catch (error) {
    if (isNotFound(error)) return undefined
    throw error
  }
}

/** Image tag per control-plane component of one node's static pods. */
function componentTags(pods: Iterable<V1Pod>, distribution: PackageDistribution): Map<string, Map<string, string>> {
  const byNode = new Map<string, Map<string, string>>()
  for (const pod of pods) {
    const component = pod.metadata?.labels?.component
    const node = pod.spec?.nodeName
    const image = pod.spec?.containers?.[0]?.image
    if (!component || !node || !image || !distribution.controlPlaneComponents.includes(component)) continue
    const tags = byNode.get(node) ?? new Map<string, string>()
    tags.set(component, image.slice(image.lastIndexOf(':') + 1))
    byNode.set(node, tags)
  }
  return byNode
}

/** Per node, the version its control-plane static pods run; "mixed (…)" while `kubeadm upgrade` is half-way. */
export async function controlPlaneVersions(kube: KubeClients, distribution: PackageDistribution): Promise<Map<string, string>> {
  const pods = await kube.core.listNamespacedPod({namespace: 'kube-system', labelSelector: CONTROL_PLANE_PODS})
  const versions = new Map<string, string>()
  for (const [node, tags] of componentTags(pods.items, distribution)) {
    const distinct = [...new Set(tags.values())].sort()
    versions.set(node, distinct.length === 1 ? distinct[0] : `mixed (${distinct.join(', ')})`)
  }
  return versions
}

/** Waits by watch until every control-plane component on `node` runs `version`. */
export async function waitControlPlaneAt(kube: KubeClients, distribution: PackageDistribution, node: string, version: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const query = {labelSelector: CONTROL_PLANE_PODS, fieldSelector: `spec.nodeName=${node}`}
  await waitFor<V1Pod, true>({
    kube,
    path: '/api/v1/namespaces/kube-system/pods',
    query,
    list: () => kube.core.listNamespacedPod({namespace: 'kube-system', ...query}),
    check: (pods) => {
      const tags = componentTags(pods.values(), distribution).get(node)
      return tags && distribution.controlPlaneComponents.every((c) => tags.get(c) === version) ? true : undefined
    },
    timeoutMs,
    description: `the control plane on ${node} (${distribution.controlPlaneComponents.join(', ')}) to run ${version}`,
    hint: `look at the static pods on ${node} (crictl ps; ${distribution.manifestsDir('/etc/kubernetes')}), or raise upgrade.timeouts.nodeReady`,
    signal,
  })
}
