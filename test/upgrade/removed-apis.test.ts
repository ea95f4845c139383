/**
 * The removed-API scan on the simulated homelab: the apiserver's deprecated-API gauge, Helm
 * release Secrets and last-applied configurations, refused with exit 3 and nothing written,
 * allowed with --allow-removed-apis, skipped for a patch upgrade, and warned about when a source
 * cannot be read.
 */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {CustomObjectsApi, KubeConfig} from '@kubernetes/client-node'

import {helmReleaseSecret} from '../sim/helm-release.js'
import type {Homelab} from '../sim/homelab.js'
import {lab, writes} from './helpers.js'

const FROM_124 = 'v1.24.17+k3s1'
const TO_125 = 'v1.25.16+k3s1'

const PROM_MANIFEST = `---
# Source: prom/templates/pdb.yaml
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata:
  name: prom-pdb
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: prom}
---
# Source: prom/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: prom
spec:
  replicas: 1
---
# Source: prom/templates/ingress.yaml (removed in 1.22: already broken on this cluster)
apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: prom-old
`

/** A client of the cluster still calling batch/v1beta1 CronJobs, through the real client library. */
async function requestRemovedApi(homelab: Homelab): Promise<void> {
  const kubeConfig = new KubeConfig()
  kubeConfig.loadFromString(homelab.api.kubeconfigYaml())
  await kubeConfig.makeApiClient(CustomObjectsApi).listClusterCustomObject({group: 'batch', version: 'v1beta1', plural: 'cronjobs'})
}

function seedFindings(homelab: Homelab): void {
  homelab.api.ensureNamespace('monitoring')
  homelab.api.ensureNamespace('web')
  homelab.api.store.create(helmReleaseSecret({name: 'prom', namespace: 'monitoring', revision: 3, manifest: PROM_MANIFEST}))
  // An older revision is history, not what the next `helm upgrade` reads.
  homelab.api.store.create(helmReleaseSecret({name: 'prom', namespace: 'monitoring', revision: 2, status: 'superseded', manifest: PROM_MANIFEST.replace('prom-pdb', 'old-pdb')}))
  const applied = {apiVersion: 'policy/v1beta1', kind: 'PodDisruptionBudget', metadata: {name: 'site', namespace: 'web'}, spec: {maxUnavailable: 1}}
  homelab.api.store.create({
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: {name: 'site', namespace: 'web', annotations: {'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(applied)}},
    spec: {maxUnavailable: 1, selector: {matchLabels: {app: 'site'}}},
  })
}

describe('removed-API scan', {timeout: 120_000}, () => {
  it('refuses a minor upgrade that removes APIs in use (exit 3, every source listed, nothing written); --allow-removed-apis upgrades and warns', async (t) => {
    const homelab = await lab(t, {servers: 1, agents: 1, version: FROM_124, releases: [TO_125]})
    seedFindings(homelab)
    await requestRemovedApi(homelab)
    const mark = homelab.api.mark()

    const refused = await homelab.cli(['k8s', 'upgrade', '--to', TO_125, '--yes'])
    assert.equal(refused.exitCode, 3, refused.stderr)
    const text = refused.stderr + refused.stdout
    assert.match(text, /APIs that Kubernetes 1\.25 no longer serves; nothing was changed/)
    assert.match(text, /Helm release monitoring\/prom \(revision 3\):\n\s+- PodDisruptionBudget policy\/v1beta1 monitoring\/prom-pdb: removed in 1\.25, use policy\/v1 PodDisruptionBudget/)
    assert.doesNotMatch(text, /old-pdb|revision 2/, 'a superseded revision is not what Helm reads next')
    assert.doesNotMatch(text, /Deployment apps\/v1/)
    assert.match(text, /requested by clients[^\n]*\n\s+- cronjobs batch\/v1beta1 requested by clients: removed in 1\.25, use batch\/v1 CronJob/)
    assert.match(text, /last-applied-configuration in namespace web:\n\s+- PodDisruptionBudget policy\/v1beta1 web\/site: removed in 1\.25, use policy\/v1 PodDisruptionBudget/)
    assert.match(text, /--allow-removed-apis/)
    assert.match(text, /already not served by v1\.24, so not made worse by this upgrade:\n\s+Helm release monitoring\/prom \(revision 3\):\n\s+- Ingress extensions\/v1beta1 monitoring\/prom-old: removed in 1\.22, use networking\.k8s\.io\/v1 Ingress/)
    assert.deepEqual(writes(homelab, mark), [], 'nothing written')

    const dryRun = await homelab.cli(['k8s', 'upgrade', '--to', TO_125, '--dry-run'])
    assert.equal(dryRun.exitCode, 3, dryRun.stderr)
    assert.match(dryRun.stderr + dryRun.stdout, /monitoring\/prom-pdb: removed in 1\.25/)

    // One request per source or listed type: the gauge, one Secret list, one list per resource type.
    const scanReads = homelab.api.audit.since(mark).filter((e) => (e.verb === 'metrics' || (e.verb === 'list' && ['secrets', 'poddisruptionbudgets', 'cronjobs'].includes(String(e.resource)))))
    assert.ok(scanReads.length <= 2 * 12, `bounded reads, got ${scanReads.length}`)
    assert.equal(scanReads.filter((e) => e.verb === 'list' && e.resource === 'secrets').length, 2, 'one Secret list per run')

    const allowed = await homelab.cli(['k8s', 'upgrade', '--to', TO_125, '--yes', '--allow-removed-apis', '--json'])
    assert.equal(allowed.exitCode, 0, allowed.stderr)
    const result = JSON.parse(allowed.stdout) as {outcome: string; warnings: string[]; removedApis: Array<{source: string; apiVersion: string; alreadyRemoved: boolean}>}
    assert.equal(result.outcome, 'succeeded')
    assert.deepEqual(result.removedApis.filter((f) => !f.alreadyRemoved).map((f) => f.source).sort(), ['clients', 'helm', 'last-applied'])
    assert.deepEqual(result.removedApis.filter((f) => f.alreadyRemoved).map((f) => f.apiVersion), ['extensions/v1beta1'])
    assert.ok(result.warnings.some((w) => /--allow-removed-apis: upgrading although Kubernetes 1\.25 no longer serves these/.test(w) && w.includes('monitoring/prom-pdb')), result.warnings.join('\n'))
    // The new apiserver stops serving it, as the real one does.
    await assert.rejects(requestRemovedApi(homelab), (e: {code?: number}) => e.code === 404)
  })

  it('does not scan a patch upgrade', async (t) => {
    const homelab = await lab(t, {servers: 1, agents: 1})
    homelab.api.store.create(helmReleaseSecret({name: 'prom', namespace: 'default', manifest: PROM_MANIFEST}))
    const mark = homelab.api.mark()
    const result = await homelab.cli(['k8s', 'upgrade', '--to', 'v1.31.5+k3s1', '--dry-run'])
    assert.equal(result.exitCode, 0, result.stderr)
    const entries = homelab.api.audit.since(mark)
    assert.equal(entries.filter((e) => e.verb === 'metrics' || e.resource === 'secrets').length, 0)
  })

  it('warns, naming the permission, when /metrics or Secrets cannot be read, and goes on', async (t) => {
    const homelab = await lab(t, {servers: 1, agents: 1, releases: ['v1.32.0+k3s1']})
    homelab.api.faults.add({verb: 'metrics', code: 403, reason: 'Forbidden', message: 'forbidden: User "ops" cannot get path "/metrics"', times: Infinity})
    homelab.api.faults.add({verb: 'list', resource: 'secrets', code: 403, reason: 'Forbidden', message: 'secrets is forbidden', times: Infinity})
    const result = await homelab.cli(['k8s', 'upgrade', '--to', 'v1.32.0+k3s1', '--dry-run', '--json'])
    assert.equal(result.exitCode, 0, result.stderr)
    const {warnings, removedApis} = JSON.parse(result.stdout) as {warnings: string[]; removedApis: unknown[]}
    assert.deepEqual(removedApis, [])
    assert.ok(warnings.some((w) => w.includes('forbidden (403) reading /metrics') && w.includes('get on the non-resource URL /metrics')), warnings.join('\n'))
    assert.ok(warnings.some((w) => w.includes('forbidden (403) listing Secrets') && w.includes('list on secrets')), warnings.join('\n'))
  })

  it('finds cluster-scoped last-applied objects of a version the target removes (1.31 → 1.32 FlowSchema v1beta3)', async (t) => {
    const homelab = await lab(t, {servers: 1, agents: 1, releases: ['v1.32.0+k3s1']})
    const applied = {apiVersion: 'flowcontrol.apiserver.k8s.io/v1beta3', kind: 'FlowSchema', metadata: {name: 'backups'}, spec: {matchingPrecedence: 1000}}
    homelab.api.store.create({
      apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
      kind: 'FlowSchema',
      metadata: {name: 'backups', annotations: {'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(applied)}},
      spec: {matchingPrecedence: 1000},
    })
    const result = await homelab.cli(['k8s', 'upgrade', '--to', 'v1.32.0+k3s1', '--dry-run'])
    assert.equal(result.exitCode, 3, result.stderr)
    assert.match(result.stderr + result.stdout, /last-applied-configuration in cluster-scoped objects:\n\s+- FlowSchema flowcontrol\.apiserver\.k8s\.io\/v1beta3 backups: removed in 1\.32, use flowcontrol\.apiserver\.k8s\.io\/v1 FlowSchema/)
  })
})
