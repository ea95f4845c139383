import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {request} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {fakeK3sBinary, systemdUnit, type K3sArch} from './k3s-fake.js'
import {imagesArchiveBytes, parseImagesArchiveHeader} from './airgap-images.js'
import {checksumFileName, imageListFor, imagesArchiveName, releaseAssetName, startReleaseServer, tarballAssetName, type ReleaseServer} from './release-server.js'

const V1 = 'v1.31.4+k3s1'
const V2 = 'v1.32.0+k3s1'
const R1 = 'v1.31.3+rke2r1'

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex')
}

async function get(url: string, init: RequestInit = {}): Promise<{status: number; body: Buffer; headers: Headers}> {
  const res = await fetch(url, {...init, signal: AbortSignal.timeout(5000)})
  return {status: res.status, body: Buffer.from(await res.arrayBuffer()), headers: res.headers}
}

/** Parses `<hex>  <file>` lines into a map, refusing anything else. */
function parseSums(text: string): Map<string, string> {
  const sums = new Map<string, string>()
  for (const line of text.split('\n').filter(Boolean)) {
    const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line)
    assert.ok(m, `bad checksum line: ${JSON.stringify(line)}`)
    sums.set(m[2]!, m[1]!)
  }
  return sums
}

describe('release server', () => {
  let server: ReleaseServer

  before(async () => {
    server = await startReleaseServer({versions: [V1, V2]})
  })
  after(() => server.stop())

  test('binaries match their sha256sum-<arch>.txt lines, per architecture', async () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/download$/)
    const arches: K3sArch[] = ['amd64', 'arm64', 'arm']
    const seen = new Set<string>()
    for (const arch of arches) {
      const file = releaseAssetName(arch)
      const sums = await get(`${server.url}/${encodeURIComponent(V1)}/${checksumFileName(arch)}`)
      assert.equal(sums.status, 200)
      const table = parseSums(sums.body.toString('utf8'))
      assert.ok(table.size >= 3, 'lists the binary and airgap tarballs')
      assert.ok([...table.keys()].some((name) => name.startsWith(`k3s-airgap-images-${arch}.`)))
      const bin = await get(`${server.url}/${encodeURIComponent(V1)}/${file}`)
      assert.equal(bin.status, 200)
      assert.equal(bin.headers.get('content-type'), 'application/octet-stream')
      assert.equal(sha256(bin.body), table.get(file))
      assert.deepEqual(bin.body, fakeK3sBinary({version: V1, arch}))
      assert.equal(server.sha256(V1, file), table.get(file))
      seen.add(table.get(file)!)
      // Every listed file is published with that very hash.
      for (const [name, hex] of table) assert.equal(sha256((await get(`${server.url}/${encodeURIComponent(V1)}/${name}`)).body), hex)
    }
    assert.equal(seen.size, 3)
    assert.deepEqual([releaseAssetName('amd64'), releaseAssetName('arm64'), releaseAssetName('arm')], ['k3s', 'k3s-arm64', 'k3s-armhf'])
    assert.notEqual(server.sha256(V1, 'k3s'), server.sha256(V2, 'k3s'))
  })

  test('downloads redirect like GitHub; %2B and + both name the version; counting', async () => {
    const before = server.downloads({version: V2, file: 'k3s-arm64'})
    const encoded = `${server.url}/v1.32.0%2Bk3s1/k3s-arm64`
    const raw = await get(encoded, {redirect: 'manual'})
    assert.equal(raw.status, 302)
    assert.match(raw.headers.get('location')!, new RegExp(`^${server.origin}/objects/v1\\.32\\.0%2Bk3s1/k3s-arm64\\?`))
    assert.equal(server.downloads({version: V2, file: 'k3s-arm64'}), before, 'a redirect is not a download')

    const a = await get(encoded)
    const b = await get(`${server.url}/v1.32.0+k3s1/k3s-arm64`)
    assert.equal(a.status, 200)
    assert.deepEqual(a.body, b.body)
    assert.equal(sha256(a.body), server.sha256(V2, 'k3s-arm64'))
    assert.equal(server.downloads({version: V2, file: 'k3s-arm64'}), before + 2)
    assert.equal(server.downloads({version: 'v1.32.0-k3s1', file: 'k3s-arm64'}), before + 2)
    const hops = server.requests.filter((r) => r.file === 'k3s-arm64').map((r) => `${r.hop} ${r.status}`)
    assert.deepEqual(hops.slice(-4), ['download 302', 'object 200', 'download 302', 'object 200'])
  })

  test('HEAD answers the length without a body', async () => {
    const res = await fetch(`${server.url}/${encodeURIComponent(V1)}/k3s`, {method: 'HEAD', signal: AbortSignal.timeout(5000)})
    assert.equal(res.status, 200)
    assert.equal(Number(res.headers.get('content-length')), server.asset(V1, 'k3s')!.length)
    assert.equal((await res.arrayBuffer()).byteLength, 0)
  })

  test('unknown versions, files and paths are 404', async () => {
    for (const path of [
      '/download/v1.99.0%2Bk3s1/k3s',
      `/download/${encodeURIComponent(V1)}/k3s-riscv64`,
      `/download/${encodeURIComponent(V1)}/sha256sum-riscv64.txt`,
      '/download/v1.31.4-k3s1/k3s', // the tag is spelled with +; - is an image tag, not a release
      '/download/not-a-version/k3s',
      `/download/${encodeURIComponent(V1)}`,
      '/download/%E0%A4%A/k3s',
      '/',
      '/releases/latest',
    ]) {
      const r = await get(`${server.origin}${path}`, {redirect: 'manual'})
      assert.equal(r.status, 404, path)
    }
    const post = await get(`${server.url}/${encodeURIComponent(V1)}/k3s`, {method: 'POST'})
    assert.equal(post.status, 405)
  })

  test('corrupt() serves bytes that no longer match the checksum file', async () => {
    const s = await startReleaseServer({versions: [V1], redirect: false})
    try {
      const sums = parseSums((await get(`${s.url}/${encodeURIComponent(V1)}/sha256sum-amd64.txt`)).body.toString())
      s.corrupt(V1, 'k3s')
      const bad = await get(`${s.url}/${encodeURIComponent(V1)}/k3s`)
      assert.equal(bad.status, 200)
      assert.notEqual(sha256(bad.body), sums.get('k3s'))
      const arm = await get(`${s.url}/${encodeURIComponent(V1)}/k3s-arm64`)
      assert.equal(sha256(arm.body), s.sha256(V1, 'k3s-arm64'), 'other assets untouched')

      s.corrupt(V1, 'sha256sum-arm64.txt')
      const wrongSums = parseSums((await get(`${s.url}/${encodeURIComponent(V1)}/sha256sum-arm64.txt`)).body.toString())
      assert.notEqual(wrongSums.get('k3s-arm64'), sha256(arm.body))

      s.clearFaults()
      assert.equal(sha256((await get(`${s.url}/${encodeURIComponent(V1)}/k3s`)).body), sums.get('k3s'))
      assert.throws(() => s.corrupt('v1.20.0+k3s1', 'k3s'), /not published/)
    } finally {
      await s.stop()
    }
  })

  test('failNext, reset and slow', async () => {
    const s = await startReleaseServer({versions: [V1]})
    try {
      const url = `${s.url}/${encodeURIComponent(V1)}/k3s`
      s.failNext(2, 503)
      assert.equal((await get(url)).status, 503)
      assert.equal((await get(url)).status, 503)
      assert.equal((await get(url)).status, 200)

      s.failNext(1, 'reset')
      await assert.rejects(get(url))
      assert.equal((await get(url)).status, 200)

      s.slow(300)
      const started = Date.now()
      assert.equal((await get(url, {redirect: 'manual'})).status, 302)
      assert.ok(Date.now() - started >= 280, `slow response took ${Date.now() - started} ms`)
      s.slow(0)
      assert.equal(s.downloads({file: 'k3s'}), 2)
    } finally {
      await s.stop()
    }
  })

  test('stop() ends even with a slow response in flight', async () => {
    const s = await startReleaseServer({versions: [V1]})
    s.slow(60_000)
    const pending = new Promise<number | string>((resolve) => {
      const req = request(`${s.url}/${encodeURIComponent(V1)}/k3s`, (res) => resolve(res.statusCode ?? 0))
      req.on('error', (e) => resolve(e.message))
      req.end()
    })
    await new Promise((r) => setTimeout(r, 50))
    const started = Date.now()
    await s.stop()
    assert.ok(Date.now() - started < 2000)
    assert.equal(typeof (await pending), 'string', 'the client sees the connection end')
  })

  test('versions can be added later and are validated', async () => {
    server.addVersion('v1.33.1-k3s1')
    assert.ok(server.versions().includes('v1.33.1+k3s1'))
    const r = await get(`${server.url}/v1.33.1%2Bk3s1/k3s-armhf`)
    assert.equal(sha256(r.body), server.sha256('v1.33.1+k3s1', 'k3s-armhf'))
    assert.throws(() => server.addVersion('1.33'), /not a k3s version/)
  })

  test('rke2 versions: the bare binary and the tarball per arch, both in sha256sum-<arch>.txt; no arm', async () => {
    const s = await startReleaseServer({versions: [R1, V1]})
    try {
      for (const arch of ['amd64', 'arm64', 's390x'] as const) {
        const base = `${s.url}/${encodeURIComponent(R1)}`
        assert.match(base, /\/v1\.31\.3%2Brke2r1$/)
        const table = parseSums((await get(`${base}/${checksumFileName(arch)}`)).body.toString('utf8'))
        const names = [...table.keys()]
        assert.deepEqual(names, [...names].sort(), 'listed in ls order')
        assert.ok(table.has(`rke2.linux-${arch}`) && table.has(`rke2.linux-${arch}.tar.gz`), names.join(' '))
        assert.ok(names.every((n) => n.includes(arch)), 'a checksum file lists its own arch only')
        for (const [name, hex] of table) {
          const r = await get(`${base}/${name}`)
          assert.equal(r.status, 200, name)
          assert.equal(sha256(r.body), hex, name)
        }
        const bin = await get(`${base}/${releaseAssetName(arch, 'rke2')}`)
        assert.deepEqual(bin.body, fakeK3sBinary({version: R1, arch}))
        assert.match(bin.body.toString('utf8', 0, 1200), /stand-in for rke2 v1\.31\.3\+rke2r1/)
      }
      assert.equal((await get(`${s.url}/${encodeURIComponent(R1)}/rke2.linux-arm`)).status, 404)
      assert.equal((await get(`${s.url}/${encodeURIComponent(R1)}/sha256sum-arm.txt`)).status, 404)
      assert.equal((await get(`${s.url}/${encodeURIComponent(R1)}/k3s`)).status, 404, 'an rke2 release has no k3s assets')
      assert.equal((await get(`${s.url}/${encodeURIComponent(V1)}/k3s`)).status, 200, 'k3s versions beside it as before')
      assert.equal((await get(`${s.url}/v1.31.3-rke2r1/rke2.linux-amd64`)).status, 404, 'the tag is spelled with +')
      assert.equal(s.sha256('v1.31.3-rke2r1', 'rke2.linux-amd64'), sha256(fakeK3sBinary({version: R1, arch: 'amd64'})))
    } finally {
      await s.stop()
    }
  })

  test('the rke2 tarball is a real gzipped tar: bin/rke2 is the bare binary, units beside it', async () => {
    const s = await startReleaseServer({versions: [R1], arches: ['arm64']})
    const dir = await mkdtemp(join(tmpdir(), 'homelab-rke2-tarball-'))
    try {
      const tarball = await get(`${s.url}/${encodeURIComponent(R1)}/${tarballAssetName('arm64')}`)
      assert.equal(tarball.status, 200)
      assert.deepEqual(tarball.body.subarray(0, 2), Buffer.from([0x1f, 0x8b]), 'gzip magic')
      const file = join(dir, tarballAssetName('arm64'))
      await writeFile(file, tarball.body)
      const listing = execFileSync('tar', ['-tzf', file], {encoding: 'utf8'}).trim().split('\n')
      for (const entry of ['bin/rke2', 'lib/systemd/system/rke2-server.service', 'lib/systemd/system/rke2-agent.service']) {
        assert.ok(listing.includes(entry), `${entry} in ${listing.join(' ')}`)
      }
      execFileSync('tar', ['-xzf', file, '-C', dir])
      const bin = await readFile(join(dir, 'bin', 'rke2'))
      assert.deepEqual(bin, s.asset(R1, releaseAssetName('arm64', 'rke2')))
      assert.equal((await stat(join(dir, 'bin', 'rke2'))).mode & 0o777, 0o755)
      const unit = await readFile(join(dir, 'lib', 'systemd', 'system', 'rke2-server.service'), 'utf8')
      assert.equal(unit, systemdUnit('rke2', 'server', '/usr/local/bin/rke2'))
      assert.match(unit, /^ExecStart=\/usr\/local\/bin\/rke2 server$/m)
      assert.match(await readFile(join(dir, 'lib', 'systemd', 'system', 'rke2-agent.service'), 'utf8'), /^ExecStart=\/usr\/local\/bin\/rke2 agent$/m)
      // Rebuilt, the same version gives the same bytes, so its checksum line holds.
      const again = await startReleaseServer({versions: [R1], arches: ['arm64']})
      try {
        assert.equal(again.sha256(R1, tarballAssetName('arm64')), sha256(tarball.body))
      } finally {
        await again.stop()
      }
    } finally {
      await s.stop()
      await rm(dir, {recursive: true, force: true})
    }
  })

  test('images archives: every compression per arch, true sha256, the header line, archiveBytes long', async () => {
    const s = await startReleaseServer({versions: [V1, R1], arches: ['amd64', 'arm64'], archiveBytes: 256 * 1024})
    try {
      const expected = {
        k3s: ['k3s-airgap-images-arm64.tar', 'k3s-airgap-images-arm64.tar.gz', 'k3s-airgap-images-arm64.tar.zst'],
        rke2: [
          'rke2-images-canal.linux-arm64.tar.gz', 'rke2-images-canal.linux-arm64.tar.zst',
          'rke2-images-core.linux-arm64.tar.gz', 'rke2-images-core.linux-arm64.tar.zst',
          'rke2-images.linux-arm64.tar.gz', 'rke2-images.linux-arm64.tar.zst',
        ],
      }
      for (const [version, distribution] of [[V1, 'k3s'], [R1, 'rke2']] as const) {
        const base = `${s.url}/${encodeURIComponent(version)}`
        const table = parseSums((await get(`${base}/${checksumFileName('arm64')}`)).body.toString('utf8'))
        assert.deepEqual([...table.keys()].filter((n) => /\.tar(\.|$)/.test(n) && n !== tarballAssetName('arm64')), expected[distribution])
        for (const file of expected[distribution]) {
          const r = await get(`${base}/${file}`)
          assert.equal(r.status, 200, file)
          assert.equal(r.body.length, 256 * 1024, file)
          assert.equal(sha256(r.body), table.get(file), file)
          assert.equal(r.body.toString('latin1', 0, r.body.indexOf(0x0a) + 1), `homelab-sim-images ${distribution} ${version} arm64 ${file}\n`)
          assert.deepEqual(parseImagesArchiveHeader(r.body), {distribution, version, arch: 'arm64', file})
          assert.match(r.body.toString('latin1', r.body.length - 90), /\nhomelab-sim-images-end [0-9a-f]{64}\n$/)
          assert.deepEqual(r.body, imagesArchiveBytes(version, 'arm64', file, 256 * 1024), 'the bytes a pre-seeded node gets')
        }
      }
      assert.equal(imagesArchiveName('k3s', 'arm64'), 'k3s-airgap-images-arm64.tar.zst')
      assert.equal(imagesArchiveName('rke2', 'amd64', 'tar.gz'), 'rke2-images.linux-amd64.tar.gz')
      assert.throws(() => imagesArchiveName('rke2', 'amd64', 'tar'), /no \.tar images archive/)
      assert.throws(() => imagesArchiveName('rke2', 'arm'), /no images for architecture "arm"/)
      // Distinct per version, arch and file; the same on every build.
      const a = s.sha256(V1, 'k3s-airgap-images-amd64.tar.zst')
      assert.notEqual(a, s.sha256(V1, 'k3s-airgap-images-arm64.tar.zst'))
      assert.notEqual(a, s.sha256(V1, 'k3s-airgap-images-amd64.tar.gz'))
      const again = await startReleaseServer({versions: [V1, V2], arches: ['amd64'], archiveBytes: 256 * 1024})
      try {
        assert.equal(again.sha256(V1, 'k3s-airgap-images-amd64.tar.zst'), a)
        assert.notEqual(again.sha256(V2, 'k3s-airgap-images-amd64.tar.zst'), a)
      } finally {
        await again.stop()
      }
    } finally {
      await s.stop()
    }
  })

  test('the default archive is 2 MiB, made quickly; a server of many versions starts at once', async () => {
    const versions = Array.from({length: 40}, (_, i) => `v1.${28 + (i % 6)}.${i}+k3s1`)
    const started = Date.now()
    const s = await startReleaseServer({versions})
    try {
      assert.ok(Date.now() - started < 1500, `start took ${Date.now() - started} ms`)
      const t = Date.now()
      const r = await get(`${s.url}/${encodeURIComponent(V1)}/${imagesArchiveName('k3s', 'amd64')}`)
      assert.equal(r.status, 404, 'V1 is not among these versions')
      const bytes = s.asset(versions[3]!, 'k3s-airgap-images-amd64.tar.zst')!
      assert.equal(bytes.length, 2 * 1024 * 1024)
      assert.equal(s.archiveBytes, 2 * 1024 * 1024)
      assert.ok(Date.now() - t < 1000, `one archive took ${Date.now() - t} ms`)
    } finally {
      await s.stop()
    }
  })

  test('image lists: k3s-images.txt per release, rke2 lists per arch; tags move with the version', async () => {
    const s = await startReleaseServer({versions: [V1, V2, R1], arches: ['amd64']})
    try {
      const k1 = (await get(`${s.url}/${encodeURIComponent(V1)}/k3s-images.txt`)).body.toString('utf8')
      const k2 = (await get(`${s.url}/${encodeURIComponent(V2)}/k3s-images.txt`)).body.toString('utf8')
      assert.equal(k1, imageListFor(V1).map((l) => `${l}\n`).join(''))
      assert.notEqual(k1, k2)
      for (const component of ['mirrored-coredns-coredns', 'klipper-helm', 'klipper-lb', 'local-path-provisioner', 'mirrored-metrics-server', 'mirrored-library-busybox', 'mirrored-pause', 'mirrored-library-traefik']) {
        assert.match(k1, new RegExp(`^docker\\.io/rancher/${component}:\\S+$`, 'm'), component)
      }
      assert.ok(imageListFor(V1).includes('docker.io/rancher/mirrored-pause:3.6'))
      assert.notDeepEqual(imageListFor(V1), imageListFor('v1.31.5+k3s1'), 'a patch release rebuilds klipper-helm')
      assert.ok(!parseSums((await get(`${s.url}/${encodeURIComponent(V1)}/sha256sum-amd64.txt`)).body.toString()).has('k3s-images.txt'))

      const base = `${s.url}/${encodeURIComponent(R1)}`
      const sums = parseSums((await get(`${base}/sha256sum-amd64.txt`)).body.toString())
      for (const file of ['rke2-images.linux-amd64.txt', 'rke2-images-core.linux-amd64.txt', 'rke2-images-canal.linux-amd64.txt', 'rke2-images-all.linux-amd64.txt']) {
        const r = await get(`${base}/${file}`)
        assert.equal(r.status, 200, file)
        assert.equal(sha256(r.body), sums.get(file), file)
      }
      const list = imageListFor(R1, 'amd64')
      assert.equal((await get(`${base}/rke2-images.linux-amd64.txt`)).body.toString(), list.map((l) => `${l}\n`).join(''))
      assert.equal(list[0], 'docker.io/rancher/rke2-runtime:v1.31.3-rke2r1')
      assert.ok(list.some((l) => /^docker\.io\/rancher\/hardened-kubernetes:v1\.31\.3-rke2r1-build\d{8}$/.test(l)))
      assert.ok(list.some((l) => l.startsWith('docker.io/rancher/hardened-calico:')), 'the default set holds canal')
      assert.deepEqual(list, [...imageListFor(R1, 'amd64', 'core'), ...imageListFor(R1, 'amd64', 'canal')])
      const all = imageListFor(R1, 'amd64', 'all')
      assert.ok(list.every((l) => all.includes(l)) && all.some((l) => l.includes('cilium')))
      assert.equal(new Set(all).size, all.length)
    } finally {
      await s.stop()
    }
  })

  test('corrupt() works for an images archive', async () => {
    const s = await startReleaseServer({versions: [V1], arches: ['amd64'], redirect: false, archiveBytes: 64 * 1024})
    try {
      const file = imagesArchiveName('k3s', 'amd64')
      const sums = parseSums((await get(`${s.url}/${encodeURIComponent(V1)}/sha256sum-amd64.txt`)).body.toString())
      s.corrupt(V1, file)
      const bad = await get(`${s.url}/${encodeURIComponent(V1)}/${file}`)
      assert.notEqual(sha256(bad.body), sums.get(file))
      assert.equal(s.sha256(V1, file), sums.get(file), 'sha256() stays the true one')
      s.clearFaults()
      assert.equal(sha256((await get(`${s.url}/${encodeURIComponent(V1)}/${file}`)).body), sums.get(file))
    } finally {
      await s.stop()
    }
  })
})
