import assert from 'node:assert/strict'
import {gzipSync} from 'node:zlib'
import {describe, it} from 'node:test'

import {decodeHelmRelease} from '../../src/safety/removed-api-scan.js'
import {REMOVED_APIS, minorOfRelease, removalOf, removalOfResource, removedBetween, useInstead} from '../../src/safety/removed-apis.js'

describe('the removed-API table', () => {
  it('names a way forward for every entry, and lists stored kinds where the old cluster serves them', () => {
    for (const api of REMOVED_APIS) {
      assert.ok(api.replacement || api.advice, `${api.group}/${api.version} ${api.kind} needs a replacement or advice`)
      assert.ok(minorOfRelease(api.removedIn) >= 22, api.removedIn)
      if (api.listAs && api.replacement) assert.notEqual(api.listAs, `${api.group}/${api.version}`, `${api.kind}: list where it is stored`)
    }
  })

  it('answers the deprecation guide for the removals users meet', () => {
    assert.equal(removalOf('policy/v1beta1', 'PodDisruptionBudget')?.removedIn, '1.25')
    assert.equal(removalOf('extensions/v1beta1', 'Ingress')?.replacement, 'networking.k8s.io/v1')
    assert.equal(removalOf('policy/v1', 'PodDisruptionBudget'), undefined)
    assert.equal(removalOfResource('flowcontrol.apiserver.k8s.io', 'v1beta3', 'flowschemas')?.removedIn, '1.32')
    assert.equal(useInstead(removalOf('policy/v1beta1', 'PodSecurityPolicy')!), removalOf('policy/v1beta1', 'PodSecurityPolicy')!.advice)
    assert.deepEqual(removedBetween(31, 32).map((api) => api.kind).sort(), ['FlowSchema', 'PriorityLevelConfiguration'])
    assert.deepEqual(removedBetween(32, 33), [])
    assert.ok(removedBetween(24, 26).some((api) => api.kind === 'CronJob') && removedBetween(24, 26).some((api) => api.version === 'v2beta2'))
    assert.ok(!removedBetween(25, 26).some((api) => api.removedIn === '1.25'), 'the current minor is excluded')
  })
})

describe('Helm release decoding', () => {
  const release = {name: 'web', namespace: 'apps', version: 4, manifest: 'apiVersion: v1\nkind: Service\n'}
  it('reads the Secret base64 of Helm base64 of gzip JSON', () => {
    const helm = gzipSync(JSON.stringify(release)).toString('base64')
    assert.deepEqual(decodeHelmRelease(Buffer.from(helm).toString('base64')), release)
  })
  it('reads a release stored without gzip', () => {
    const helm = Buffer.from(JSON.stringify(release)).toString('base64')
    assert.deepEqual(decodeHelmRelease(Buffer.from(helm).toString('base64')), release)
  })
})
