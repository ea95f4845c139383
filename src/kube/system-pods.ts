import type {V1Pod} from '@kubernetes/client-node'

import type {KubeClients} from './client.js'
import {waitFor} from './wait.js'
import {expectedRunning, runningAndReady} from '../safety/workload-health.js'

/**
 * Waits (by watch) until every kube-system pod scheduled on `node` that should run is Running and
 * Ready: after a restart on new images, they are what shows whether the images were there.
 */
export async function waitSystemPodsOnNode(kube: KubeClients, node: string, options: {timeoutMs: number; signal?: AbortSignal}): Promise<void> {
  const fieldSelector = `spec.nodeName=${node}`
  const notReady = (pods: Iterable<V1Pod>) => [...pods].filter((pod) => expectedRunning(pod) && !runningAndReady(pod))
  await waitFor<V1Pod, true>({
    kube,
    path: '/api/v1/namespaces/kube-system/pods',
    query: {fieldSelector},
    list: () => kube.core.listNamespacedPod({namespace: 'kube-system', fieldSelector}),
    check: (pods) => (notReady(pods.values()).length === 0 ? true : undefined),
    seen: (pods) => `not Running and Ready: ${notReady(pods.values()).map((pod) => pod.metadata?.name).join(', ')}`,
    timeoutMs: options.timeoutMs,
    description: `the kube-system pods on ${node} to be Running and Ready`,
    hint: `look at them with kubectl -n kube-system get pods --field-selector ${fieldSelector}`,
    signal: options.signal,
  })
}
