import assert from 'node:assert/strict'
import {describe, test} from 'node:test'

import semver from 'semver'

import {VersionError} from '../src/errors.js'
import {
  compareVersions,
  isVersionString,
  ReleaseVersion,
  looksLikeChannel,
  parseKubernetesVersion,
  parseVersion,
  satisfiesRange,
  sortVersions,
} from '../src/versions/release-version.js'
import {classifyUpgrade, clusterSkew, planHops} from '../src/versions/skew.js'

const v = (s: string) => parseVersion(s)

describe('parseVersion', () => {
  test('reads the + form and prints it in every spelling', () => {
    const version = v('v1.32.0+k3s1')
    assert.deepEqual(
      [version.major, version.minor, version.patch, version.release, version.distribution],
      [1, 32, 0, 1, 'k3s'],
    )
    assert.equal(version.format(), 'v1.32.0+k3s1')
    assert.equal(version.tag(), 'v1.32.0-k3s1')
    assert.equal(version.urlEncoded(), 'v1.32.0%2Bk3s1')
    assert.equal(version.minorLine(), 'v1.32')
    assert.equal(JSON.stringify({version}), '{"version":"v1.32.0+k3s1"}')
  })

  test('accepts the image-tag form (-k3sN) and prints the + form', () => {
    const version = v('v1.31.4-k3s2')
    assert.equal(version.format(), 'v1.31.4+k3s2')
    assert.equal(version.release, 2)
    assert.ok(version.equals(v('v1.31.4+k3s2')))
  })

  test('reads rke2 versions, and refuses the other distribution when one is given', () => {
    const version = parseVersion('v1.31.3-rke2r1')
    assert.equal(version.distribution, 'rke2')
    assert.equal(version.format(), 'v1.31.3+rke2r1')
    assert.equal(parseVersion('v1.31.3+rke2r1', 'rke2').release, 1)
    assert.throws(() => parseVersion('v1.31.3+rke2r1', 'k3s'), (e: unknown) => {
      assert.ok(e instanceof VersionError)
      assert.match(e.message, /is a rke2 version, but this cluster runs k3s/)
      assert.match(e.hint ?? '', /distribution: rke2/)
      return true
    })
  })

  test('reads release candidates from the testing channels', () => {
    const rc = v('v1.29.0-rc3+k3s1')
    assert.deepEqual(rc.preRelease, {kind: 'rc', number: 3})
    assert.equal(rc.format(), 'v1.29.0-rc3+k3s1')
    assert.equal(rc.tag(), 'v1.29.0-rc3-k3s1')
  })

  test('is immutable', () => {
    const version = v('v1.32.0+k3s1')
    assert.throws(() => {
      ;(version as unknown as {minor: number}).minor = 40
    }, TypeError)
  })

  const bad: Array<[string, RegExp, RegExp]> = [
    ['1.32', /is a channel name/, /channel/],
    ['latest', /is a channel name/, /v1\.32\.0\+k3s1/],
    ['v1.32.0', /release number is missing/, /v1\.32\.0\+k3s1.*channel such as v1\.32/],
    ['v1.32.0+k3s', /must be followed by the release number/, /v1\.32\.0\+k3s1/],
    ['1.32.0+k3s1', /lacks the leading "v"/, /use v1\.32\.0\+k3s1/],
    [' v1.32.0+k3s1', /surrounding spaces/, /use v1\.32\.0\+k3s1/],
    ['v1.32.0+k3s0', /is not a k3s version/, /v1\.32\.0\+k3s1/],
    ['v01.32.0+k3s1', /is not a k3s version/, /form v1\.32\.0\+k3s1/],
    ['v1.32.0+k3s1; rm -rf /', /is not a k3s version/, /form/],
    ['', /is not a k3s version/, /form/],
  ]
  for (const [input, message, hint] of bad) {
    test(`rejects ${JSON.stringify(input)} with a hint`, () => {
      assert.throws(() => v(input), (e: unknown) => {
        assert.ok(e instanceof VersionError, String(e))
        assert.match(e.message, message)
        assert.match(e.hint ?? '', hint)
        return true
      })
    })
  }

  test('tells a channel from a version', () => {
    for (const s of ['stable', 'latest', 'testing', 'v1.31', '1.31', 'v1.18-testing']) {
      assert.equal(looksLikeChannel(s), true, s)
      assert.equal(isVersionString(s), false, s)
    }
    for (const s of ['v1.31.2+k3s1', 'v1.31.2-k3s1']) {
      assert.equal(looksLikeChannel(s), false, s)
      assert.equal(isVersionString(s), true, s)
    }
    // Neither: the release number is missing, so parseVersion must explain it.
    assert.equal(looksLikeChannel('v1.31.2'), false)
    assert.equal(isVersionString('v1.31.2'), false)
    assert.equal(isVersionString('v1.31.3+rke2r1', 'k3s'), false)
  })
})

describe('compareVersions', () => {
  test('orders by release number where SemVer sees equality', () => {
    assert.equal(compareVersions('v1.30.4+k3s1', 'v1.30.4+k3s2'), -1)
    assert.equal(compareVersions('v1.30.4+k3s2', 'v1.30.4-k3s1'), 1)
    assert.equal(compareVersions('v1.30.4+k3s2', 'v1.30.4-k3s2'), 0)
  })

  test('orders major.minor.patch numerically before the release number', () => {
    const sorted = sortVersions(
      ['v1.30.10+k3s1', 'v1.30.9+k3s3', 'v1.9.0+k3s9', 'v1.31.0+k3s1', 'v1.31.0-rc10+k3s1', 'v1.31.0-rc2+k3s1', 'v1.30.9+k3s2'].map(v),
    ).map((x) => x.format())
    assert.deepEqual(sorted, [
      'v1.9.0+k3s9',
      'v1.30.9+k3s2',
      'v1.30.9+k3s3',
      'v1.30.10+k3s1',
      'v1.31.0-rc2+k3s1',
      'v1.31.0-rc10+k3s1',
      'v1.31.0+k3s1',
    ])
  })

  test('refuses to order k3s against rke2', () => {
    assert.throws(() => compareVersions('v1.31.0+k3s1', 'v1.31.0+rke2r1'), VersionError)
  })
})

describe('classifyUpgrade', () => {
  const cases: Array<[string, string, string]> = [
    ['v1.31.4+k3s1', 'v1.31.4-k3s1', 'same'],
    ['v1.31.4+k3s1', 'v1.31.5+k3s1', 'patch'],
    ['v1.31.4+k3s1', 'v1.31.4+k3s2', 'patch'],
    ['v1.31.0-rc1+k3s1', 'v1.31.0+k3s1', 'patch'],
    ['v1.31.4+k3s1', 'v1.32.0+k3s1', 'minor'],
    ['v1.30.9+k3s1', 'v1.32.0+k3s1', 'skip'],
    ['v1.29.1+k3s1', 'v1.32.3+k3s1', 'skip'],
    ['v1.31.4+k3s2', 'v1.31.4+k3s1', 'downgrade'],
    ['v1.31.4+k3s1', 'v1.31.3+k3s5', 'downgrade'],
    ['v1.32.0+k3s1', 'v1.31.9+k3s1', 'downgrade'],
    ['v1.31.0+k3s1', 'v2.0.0+k3s1', 'downgrade'],
  ]
  for (const [from, to, kind] of cases) {
    test(`${from} → ${to} is ${kind}`, () => {
      assert.equal(classifyUpgrade(from, to), kind)
    })
  }
})

describe('planHops', () => {
  const latest: Record<string, string> = {'v1.30': 'v1.30.14+k3s2', 'v1.31': 'v1.31.12+k3s1', 'v1.32': 'v1.32.8+k3s1'}
  const asked: string[] = []
  const latestOfMinor = async (line: string) => {
    asked.push(line)
    const found = latest[line]
    if (!found) throw new Error(`no ${line}`)
    return found
  }

  test('passes through the newest release of each minor in between', async () => {
    asked.length = 0
    const hops = await planHops('v1.29.5+k3s1', 'v1.32.2+k3s1', latestOfMinor)
    assert.deepEqual(hops.map((h) => h.format()), ['v1.30.14+k3s2', 'v1.31.12+k3s1', 'v1.32.2+k3s1'])
    assert.deepEqual(asked, ['v1.30', 'v1.31'])
  })

  test('two minors ahead makes one intermediate hop', async () => {
    const hops = await planHops(v('v1.30.1+k3s1'), v('v1.32.0+k3s1'), latestOfMinor)
    assert.deepEqual(hops.map(String), ['v1.31.12+k3s1', 'v1.32.0+k3s1'])
  })

  test('same minor or the next one goes straight to the target, without asking', async () => {
    asked.length = 0
    assert.deepEqual((await planHops('v1.31.1+k3s1', 'v1.32.0+k3s1', latestOfMinor)).map(String), ['v1.32.0+k3s1'])
    assert.deepEqual((await planHops('v1.31.1+k3s1', 'v1.31.1+k3s2', latestOfMinor)).map(String), ['v1.31.1+k3s2'])
    assert.deepEqual(await planHops('v1.31.1+k3s1', 'v1.31.1-k3s1', latestOfMinor), [])
    assert.deepEqual(asked, [])
  })

  test('refuses a downgrade', async () => {
    await assert.rejects(planHops('v1.31.4+k3s2', 'v1.31.4+k3s1', latestOfMinor), (e: unknown) => {
      assert.ok(e instanceof VersionError)
      assert.match(e.message, /v1\.31\.4\+k3s2 to v1\.31\.4\+k3s1: that is a downgrade/)
      assert.ok(e.hint)
      return true
    })
  })

  test('refuses an intermediate version from the wrong minor', async () => {
    await assert.rejects(planHops('v1.29.5+k3s1', 'v1.31.0+k3s1', async () => 'v1.31.0+k3s1'), /newest release of v1\.30 was reported as v1\.31\.0\+k3s1/)
  })
})

describe('clusterSkew', () => {
  test('one version everywhere is fine', () => {
    const skew = clusterSkew([
      {name: 's1', role: 'server', version: 'v1.31.4+k3s1'},
      {name: 'a1', role: 'agent', version: 'v1.31.4+k3s1'},
    ])
    assert.equal(skew.ok, true)
    assert.equal(skew.uniform, true)
    assert.deepEqual(skew.versions, [{version: 'v1.31.4+k3s1', nodes: ['s1', 'a1']}])
    assert.equal(skew.summary, 'all 2 nodes on v1.31.4+k3s1')
  })

  test('servers ahead of agents by one minor (an upgrade in progress) is fine', () => {
    const skew = clusterSkew([
      {name: 's1', role: 'server', version: 'v1.32.0+k3s1'},
      {name: 's2', role: 'server', version: v('v1.31.4+k3s1')},
      {name: 'a1', role: 'agent', version: 'v1.31.4+k3s1'},
    ])
    assert.equal(skew.ok, true)
    assert.equal(skew.uniform, false)
    assert.equal(skew.oldestServer, 'v1.31.4+k3s1')
    assert.equal(skew.newestServer, 'v1.32.0+k3s1')
    assert.deepEqual(skew.versions.map((g) => g.version), ['v1.31.4+k3s1', 'v1.32.0+k3s1'])
    assert.match(skew.summary, /^mixed versions: v1\.31\.4\+k3s1 \(s2, a1\); v1\.32\.0\+k3s1 \(s1\)\. within the skew policy/)
  })

  test('a kubelet of a newer minor than the oldest API server is forbidden', () => {
    const skew = clusterSkew([
      {name: 's1', role: 'server', version: 'v1.31.4+k3s1'},
      {name: 'a1', role: 'agent', version: 'v1.32.0+k3s1'},
      {name: 'a2', role: 'agent', version: 'v1.31.5+k3s1'},
    ])
    assert.equal(skew.ok, false)
    assert.deepEqual(skew.kubeletNewerThanApiServer.map((x) => x.node), ['a1'])
    assert.match(skew.summary, /FORBIDDEN: kubelet on a1 \(v1\.32\.0\+k3s1\) is newer than the API server on s1 \(v1\.31\.4\+k3s1\)/)
  })

  test('servers more than one minor apart are forbidden', () => {
    const skew = clusterSkew([
      {name: 's1', role: 'server', version: 'v1.29.4+k3s1'},
      {name: 's2', role: 'server', version: 'v1.31.4+k3s1'},
    ])
    assert.equal(skew.serversTooFarApart, true)
    assert.equal(skew.ok, false)
    assert.match(skew.summary, /servers are more than one minor apart: s1 \(v1\.29\.4\+k3s1\) vs s2 \(v1\.31\.4\+k3s1\)/)
  })

  test('a kubelet more than three minors behind is flagged', () => {
    const skew = clusterSkew([
      {name: 's1', role: 'server', version: 'v1.32.0+k3s1'},
      {name: 'a1', role: 'agent', version: 'v1.28.9+k3s1'},
    ])
    assert.equal(skew.ok, false)
    assert.deepEqual(skew.kubeletTooOld.map((x) => x.node), ['a1'])
  })

  test('reports versions it cannot read instead of throwing', () => {
    const skew = clusterSkew([
      {name: 's1', role: 'server', version: 'v1.31.4+k3s1'},
      {name: 'odd', role: 'agent', version: 'v1.31.4'},
    ])
    assert.equal(skew.ok, true)
    assert.deepEqual(skew.unparsed.map((u) => u.node), ['odd'])
    assert.match(skew.summary, /unknown: odd/)
  })

  test('no nodes', () => {
    assert.equal(clusterSkew([]).summary, 'no nodes')
  })
})

test('ReleaseVersion.parse is parseVersion', () => {
  assert.ok(ReleaseVersion.parse('v1.30.0-k3s1').equals(v('v1.30.0+k3s1')))
})

// Our layer over the semver package: what it gets wrong for k3s and rke2, asserted next to it.
describe('the layer over semver', () => {
  test('+k3s1 < +k3s2, which semver compares equal (build metadata)', () => {
    assert.equal(semver.compare('1.30.4+k3s1', '1.30.4+k3s2'), 0)
    assert.equal(compareVersions('v1.30.4+k3s1', 'v1.30.4+k3s2'), -1)
    assert.equal(compareVersions('v1.31.3+rke2r2', 'v1.31.3-rke2r1'), 1)
    assert.equal(v('v1.30.4+k3s1').equals(v('v1.30.4+k3s2')), false)
  })

  test('rc2 < rc10, which semver orders the other way when written without a dot', () => {
    assert.equal(semver.compare('1.31.0-rc2', '1.31.0-rc10'), 1)
    assert.equal(compareVersions('v1.31.0-rc2+k3s1', 'v1.31.0-rc10+k3s1'), -1)
    assert.equal(compareVersions('v1.31.0-beta9+k3s1', 'v1.31.0-beta10+k3s1'), -1)
    assert.equal(v('v1.31.0-rc10+k3s1').toSemVer().version, '1.31.0-rc.10')
  })

  test('a pre-release comes before its release, whatever the release numbers', () => {
    assert.equal(compareVersions('v1.31.0-rc1+k3s9', 'v1.31.0+k3s1'), -1)
    assert.equal(compareVersions('v1.31.0-alpha1+k3s1', 'v1.31.0-beta1+k3s1'), -1)
    assert.equal(compareVersions('v1.31.0-beta2+k3s1', 'v1.31.0-rc1+k3s1'), -1)
    assert.equal(compareVersions('v1.31.0-rc3+k3s2', 'v1.31.0-rc3+k3s1'), 1)
    assert.equal(compareVersions('v1.30.9+k3s1', 'v1.31.0-alpha1+k3s1'), -1)
  })

  test('refuses what semver alone would accept', () => {
    for (const input of [
      'v1.32.0-rc.1+k3s1',
      'v1.32.0-foo1+k3s1',
      'v1.32.0-rc1.1+k3s1',
      'v1.32.0+build+k3s1',
      'vv1.32.0+k3s1',
      'v=1.32.0+k3s1',
      'v 1.32.0+k3s1',
      'v1.32.0 +k3s1',
      'v1.32.0+k3s1-k3s1',
      'v1.032.0+k3s1',
      'v99999999999999999999.0.0+k3s1',
    ]) {
      assert.equal(isVersionString(input), false, input)
      assert.throws(() => v(input), VersionError, input)
    }
  })
})

describe('parseKubernetesVersion', () => {
  test('reads plain kubeadm versions as a semver.SemVer', () => {
    const version = parseKubernetesVersion('v1.31.4')
    assert.ok(version instanceof semver.SemVer)
    assert.deepEqual([version.major, version.minor, version.patch, version.prerelease], [1, 31, 4, []])
    assert.equal(version.version, '1.31.4')
    assert.equal(semver.compare(version, parseKubernetesVersion('v1.31.10')), -1)
  })

  test('reads pre-releases dotted, so semver orders rc2 before rc10', () => {
    assert.equal(parseKubernetesVersion('v1.33.0-rc.1').version, '1.33.0-rc.1')
    assert.equal(parseKubernetesVersion('v1.29.0-rc3').version, '1.29.0-rc.3')
    assert.equal(semver.compare(parseKubernetesVersion('v1.33.0-rc2'), parseKubernetesVersion('v1.33.0-rc10')), -1)
    assert.equal(semver.compare(parseKubernetesVersion('v1.33.0-rc.2'), parseKubernetesVersion('v1.33.0')), -1)
  })

  const bad: Array<[string, RegExp, RegExp]> = [
    ['v1.31.4+k3s1', /"v1\.31\.4\+k3s1" is a k3s release, not a plain Kubernetes version/, /use its Kubernetes part v1\.31\.4$/],
    ['v1.31.3-rke2r1', /is a rke2 release/, /v1\.31\.3$/],
    ['1.31.4', /lacks the leading "v"/, /use v1\.31\.4/],
    [' v1.31.4', /surrounding spaces/, /use v1\.31\.4/],
    ['v1.31', /is not a Kubernetes version/, /form v1\.31\.4/],
    ['v1.31.4-1.1', /is not a Kubernetes version/, /form/],
    ['v1.33.0-rc.1+abcdef', /is not a Kubernetes version/, /form/],
    ['latest', /is not a Kubernetes version/, /form/],
  ]
  for (const [input, message, hint] of bad) {
    test(`rejects ${JSON.stringify(input)} with a hint`, () => {
      assert.throws(() => parseKubernetesVersion(input), (e: unknown) => {
        assert.ok(e instanceof VersionError, String(e))
        assert.match(e.message, message)
        assert.match(e.hint ?? '', hint)
        return true
      })
    })
  }
})

describe('satisfiesRange', () => {
  test('judges the Kubernetes part of k3s, rke2 and plain versions', () => {
    assert.equal(satisfiesRange('v1.31.4', '>=1.25.0'), true)
    assert.equal(satisfiesRange('v1.31.4', '<1.32.0'), true)
    assert.equal(satisfiesRange('v1.24.17', '>=1.25.0'), false)
    assert.equal(satisfiesRange('v1.32.0+k3s1', '<1.32.0'), false)
    assert.equal(satisfiesRange('v1.31.9-k3s2', '>=1.25.0 <1.32.0'), true)
    assert.equal(satisfiesRange(v('v1.31.3+rke2r1'), '1.31.x'), true)
    assert.equal(satisfiesRange(parseKubernetesVersion('v1.30.0'), '~1.31.0 || ^1.30.0'), true)
  })

  test('the release number plays no part', () => {
    assert.equal(satisfiesRange('v1.31.4+k3s9', '<=1.31.4'), true)
    assert.equal(satisfiesRange('v1.31.4+k3s1', '>1.31.4'), false)
  })

  test('pre-releases are in the order, rc2 before rc10', () => {
    assert.equal(semver.satisfies('1.31.0-rc10', '>=1.31.0-rc2'), false)
    assert.equal(satisfiesRange('v1.31.0-rc10+k3s1', '>=1.31.0-rc2'), true)
    assert.equal(satisfiesRange('v1.31.0-rc10+k3s1', '>=1.31.0-rc.2 <1.31.0'), true)
    assert.equal(satisfiesRange('v1.31.0-rc1+k3s1', '>=1.25.0'), true)
    assert.equal(satisfiesRange('v1.32.0-rc1+k3s1', '<1.32.0'), true)
    assert.equal(satisfiesRange('v1.32.0-rc1+k3s1', '<1.32.0-0'), false)
    assert.equal(satisfiesRange('v1.32.0-rc1+k3s1', '>=1.32.0'), false)
  })

  test('refuses a broken version or range', () => {
    assert.throws(() => satisfiesRange('v1.32.0+k3s', '>=1.25.0'), /must be followed by the release number/)
    assert.throws(() => satisfiesRange('1.31.4', '>=1.25.0'), /lacks the leading "v"/)
    assert.throws(() => satisfiesRange('v1.31.4', 'newer than 1.25'), (e: unknown) => {
      assert.ok(e instanceof VersionError)
      assert.match(e.message, /"newer than 1\.25" is not a version range/)
      assert.match(e.hint ?? '', />=1\.25\.0/)
      return true
    })
  })
})
