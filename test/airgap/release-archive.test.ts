/**
 * Issue 13: an images archive is downloaded once into the cache, verified against
 * sha256sum-<arch>.txt, and a download cut short resumes from where it stopped.
 */
import assert from 'node:assert/strict'
import {mkdtemp, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, before, test} from 'node:test'

import {K3S} from '../../src/distributions/k3s.js'
import {ConnectionError, PreflightError} from '../../src/errors.js'
import {ReleaseSource, sha256File} from '../../src/release/release-source.js'
import {parseVersion} from '../../src/versions/release-version.js'
import {imagesArchiveName} from '../sim/airgap-images.js'
import {startReleaseServer, type ReleaseServer} from '../sim/release-server.js'

const TO = 'v1.31.5+k3s1'
const ARCHIVE = imagesArchiveName('k3s', 'amd64')
let server: ReleaseServer
let cacheDir: string

before(async () => {
  server = await startReleaseServer({versions: [TO], arches: ['amd64']})
  cacheDir = await mkdtemp(path.join(tmpdir(), 'homelab-archive-cache-'))
})
after(async () => {
  await server.stop()
  await rm(cacheDir, {recursive: true, force: true})
})

const source = () => new ReleaseSource({distribution: K3S, releaseUrl: server.url, cacheDir})
const archiveRequests = () => server.requests.filter((r) => r.file === ARCHIVE && r.hop === 'object' && r.method === 'GET')

test('a download cut short keeps its bytes, and the next one asks only for the rest', async () => {
  server.clearFaults()
  const cut = 700_000
  server.truncateNext(cut)
  await assert.rejects(source().artifact(parseVersion(TO), 'amd64', ARCHIVE), (error: unknown) => {
    assert.ok(error instanceof ConnectionError, String(error))
    assert.match(error.oneLine(), /cut short.*fix: run again: the download resumes/)
    return true
  })
  // What reached the disk before the cut (a write stream torn down may lose its last buffer).
  const partial = path.join(cacheDir, TO, 'amd64', `${ARCHIVE}.part`)
  const kept = (await stat(partial)).size
  assert.ok(kept > 0 && kept <= cut, `${kept} bytes kept of ${cut} sent`)

  const artifact = await source().artifact(parseVersion(TO), 'amd64', ARCHIVE)
  assert.equal(archiveRequests().at(-1)?.rangeFrom, kept, 'the second download did not resume from the kept bytes')
  assert.equal(artifact.sha256, server.sha256(TO, ARCHIVE))
  assert.equal(artifact.size, server.archiveBytes)
  assert.equal(await sha256File(artifact.path), artifact.sha256)
  await assert.rejects(stat(partial), 'the partial file is gone once complete')

  // Cached and verified: a third run downloads nothing.
  const before = archiveRequests().length
  await source().artifact(parseVersion(TO), 'amd64', ARCHIVE)
  assert.equal(archiveRequests().length, before)
})

test('an archive whose sha256 does not match is refused (exit 3) and not kept', async () => {
  await rm(path.join(cacheDir, TO), {recursive: true, force: true})
  server.clearFaults()
  server.corrupt(TO, ARCHIVE)
  try {
    await assert.rejects(source().artifact(parseVersion(TO), 'amd64', ARCHIVE), (error: unknown) => {
      assert.ok(error instanceof PreflightError, String(error))
      assert.match(error.message, /download sha256 does not match for .*k3s-airgap-images-amd64\.tar\.zst/)
      return true
    })
    await assert.rejects(stat(path.join(cacheDir, TO, 'amd64', `${ARCHIVE}.part`)))
    await assert.rejects(stat(path.join(cacheDir, TO, 'amd64', ARCHIVE)))
  } finally {
    server.clearFaults()
  }
})
