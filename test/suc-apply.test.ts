import assert from 'node:assert/strict'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'

import {PatchStrategy} from '@kubernetes/client-node'

import {ExitCode, PreflightError} from '../src/errors.js'
import {applyPlans, inspectController, installController, loadManifests} from '../src/suc/apply.js'
import {buildPlans} from '../src/suc/build.js'
import {waitForPlans} from '../src/suc/status.js'
import type {Plan} from '../src/suc/types.js'
import {parseVersion} from '../src/versions/release-version.js'
import {serveControllerManifests, writeControllerManifests} from './sim/suc-controller.js'
import {defaultConfig, startSucCluster, type SucCluster} from './suc-fixture.js'

function plans(version: string, agentConcurrency = 1): Plan[] {
  const built = buildPlans({distribution: 'k3s', target: {kind: 'version', version: parseVersion(version)}, agentConcurrency, drain: defaultConfig().upgrade.drain})
  return [built.server, built.agent]
}

const planWrites = (c: SucCluster) => c.api.audit.writes({includeDryRun: true}).filter((e) => e.resource === 'plans')

describe('plan apply', () => {
  it('refuses (exit 3) when the Plan CRD is missing, says how to install the controller, writes nothing', async () => {
    const c = await startSucCluster({api: {crds: {velero: false, suc: false}}, installed: false, controller: false})
    try {
      await assert.rejects(applyPlans(c.kube, plans('v1.31.5+k3s1')), (error: PreflightError) => {
        assert.equal(error.exitCode, ExitCode.preflightRefused)
        assert.match(error.message, /not installed: missing the CustomResourceDefinition plans\.upgrade\.cattle\.io, the namespace system-upgrade, the ServiceAccount system-upgrade\/system-upgrade/)
        assert.match(error.hint ?? '', /homelab k8s plan apply --install-controller/)
        assert.match(error.hint ?? '', /releases\/latest\/download\/crd\.yaml/)
        return true
      })
      assert.deepEqual(c.api.audit.writes({includeDryRun: true}), [])
    } finally {
      await c.stop()
    }
  })

  it('with the CRD but no namespace or ServiceAccount, names just those', async () => {
    const c = await startSucCluster({installed: false, controller: false})
    try {
      await assert.rejects(applyPlans(c.kube, plans('v1.31.5+k3s1')), /missing the namespace system-upgrade, the ServiceAccount system-upgrade\/system-upgrade$/)
    } finally {
      await c.stop()
    }
  })

  describe('into an installed controller', () => {
    let c: SucCluster
    before(async () => {
      c = await startSucCluster({controller: false})
    })
    after(() => c.stop())

    it('--dry-run asks the server (dryRun=All) and stores nothing', async () => {
      const {applied, warnings} = await applyPlans(c.kube, plans('v1.31.5+k3s1'), {dryRun: true})
      assert.deepEqual(applied.map((a) => [a.name, a.action, a.dryRun]), [['k3s-server', 'created', true], ['k3s-agent', 'created', true]])
      assert.ok(warnings.some((w) => /no Deployment system-upgrade\/system-upgrade-controller/.test(w)))
      assert.ok(planWrites(c).every((e) => e.dryRun && e.query.dryRun === 'All'))
      assert.equal(c.api.store.list('plans.upgrade.cattle.io').length, 0)
    })

    it('server-side applies with field manager homelab; again is unchanged; a new version is configured', async () => {
      const first = await applyPlans(c.kube, plans('v1.31.5+k3s1'))
      assert.deepEqual(first.applied.map((a) => a.action), ['created', 'created'])
      const writes = planWrites(c).filter((e) => !e.dryRun)
      assert.equal(writes.length, 2)
      for (const w of writes) {
        assert.equal(w.verb, 'patch')
        assert.equal(w.fieldManager, 'homelab')
        assert.equal(w.contentType?.split(';')[0], PatchStrategy.ServerSideApply)
      }
      const stored = c.api.store.get('plans.upgrade.cattle.io', 'system-upgrade', 'k3s-server')
      assert.equal(stored?.spec?.version, 'v1.31.5+k3s1')
      assert.ok(stored?.metadata.managedFields?.some((m) => m.manager === 'homelab' && m.operation === 'Apply'))

      const again = await applyPlans(c.kube, plans('v1.31.5+k3s1'))
      assert.deepEqual(again.applied.map((a) => a.action), ['unchanged', 'unchanged'])
      const next = await applyPlans(c.kube, plans('v1.31.6+k3s1'))
      assert.deepEqual(next.applied.map((a) => a.action), ['configured', 'configured'])
    })

    it('a field another manager owns is a conflict that names --force-conflicts; with it, we take it over', async () => {
      // Someone raised the agents' concurrency with kubectl's server-side apply.
      await c.kube.objects.patch(
        {apiVersion: 'upgrade.cattle.io/v1', kind: 'Plan', metadata: {name: 'k3s-agent', namespace: 'system-upgrade'}, spec: {concurrency: 5}} as never,
        undefined,
        undefined,
        'kubectl',
        true,
        PatchStrategy.ServerSideApply,
      )
      await assert.rejects(applyPlans(c.kube, plans('v1.31.6+k3s1', 2)), (error: Error & {hint?: string}) => {
        assert.match(error.message, /applying Plan system-upgrade\/k3s-agent conflicts with another field manager/)
        assert.match(error.hint ?? '', /--force-conflicts/)
        return true
      })
      assert.equal(c.api.store.get('plans.upgrade.cattle.io', 'system-upgrade', 'k3s-agent')?.spec?.concurrency, 5)
      await applyPlans(c.kube, plans('v1.31.6+k3s1', 2), {forceConflicts: true})
      assert.equal(c.api.store.get('plans.upgrade.cattle.io', 'system-upgrade', 'k3s-agent')?.spec?.concurrency, 2)
    })

    it('refuses plans outside the controller\'s namespace', async () => {
      const [server] = plans('v1.31.5+k3s1')
      server.metadata.namespace = 'elsewhere'
      await assert.rejects(applyPlans(c.kube, [server]), /in namespace elsewhere, but the controller runs in system-upgrade/)
    })
  })

  describe('--install-controller', () => {
    let c: SucCluster
    let served: Awaited<ReturnType<typeof serveControllerManifests>>
    before(async () => {
      // A bare cluster: no CRD, no namespace. The simulated controller starts working once its Deployment is available.
      c = await startSucCluster({api: {crds: {velero: false, suc: false}}, installed: false, suc: {requireDeployment: true}})
      served = await serveControllerManifests()
    })
    after(async () => {
      await served.close()
      await c.stop()
    })

    it('a dry run checks what it can and stores nothing', async () => {
      const paths = await writeControllerManifests(path.join(c.dir, 'manifests'))
      const objects = await loadManifests([paths.controller, paths.crd])
      assert.equal(objects[0].kind, 'CustomResourceDefinition', 'CRDs are applied first')
      assert.equal(objects[1].kind, 'Namespace', 'then namespaces')
      const applied = await installController(c.kube, objects, {dryRun: true, timeoutMs: 5000})
      const byKind = Object.fromEntries(applied.map((a) => [a.kind, a.action]))
      assert.equal(byKind.CustomResourceDefinition, 'created')
      assert.equal(byKind.Namespace, 'created')
      assert.equal(byKind.ClusterRoleBinding, 'created')
      assert.equal(byKind.Deployment, 'unchecked', 'its namespace does not exist yet')
      assert.equal(c.api.store.list('customresourcedefinitions.apiextensions.k8s.io').length, 0)
      assert.equal(c.api.store.get('namespaces', 'system-upgrade'), undefined)
    })

    it('applies the release manifests from URLs, waits for the Deployment, then the plans run', async () => {
      const objects = await loadManifests([`${served.url}/crd.yaml`, `${served.url}/system-upgrade-controller.yaml`])
      const progress: string[] = []
      const applied = await installController(c.kube, objects, {timeoutMs: 10_000, onProgress: (m) => progress.push(m)})
      assert.deepEqual(served.requests, ['/crd.yaml', '/system-upgrade-controller.yaml'])
      assert.ok(applied.every((a) => a.action === 'created'))
      assert.ok(progress.some((m) => /waiting for the Deployment system-upgrade\/system-upgrade-controller to be available/.test(m)))
      const state = await inspectController(c.kube)
      assert.deepEqual(state, {namespace: 'system-upgrade', crd: true, namespaceExists: true, serviceAccount: true, deployment: {available: true}})

      const {warnings} = await applyPlans(c.kube, plans('v1.31.5+k3s1'))
      assert.deepEqual(warnings, [])
      const {outcome} = await waitForPlans(c.kube, {timeoutMs: 10_000})
      assert.equal(outcome, 'complete')

      // Installing again changes nothing.
      const again = await installController(c.kube, objects, {timeoutMs: 10_000})
      assert.ok(again.every((a) => a.action === 'unchanged'), JSON.stringify(again))
    })

    it('a manifest that cannot be fetched says how to get around it', async () => {
      await assert.rejects(loadManifests([`${served.url}/missing.yaml`]), (error: Error & {hint?: string}) => {
        assert.match(error.message, /answered 404/)
        assert.match(error.hint ?? '', /--controller-manifest FILE/)
        return true
      })
    })
  })
})
