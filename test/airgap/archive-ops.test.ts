/**
 * The archive moves on a node (src/airgap/archive-ops.ts), run through the local transport on a
 * temp dir: placing keeps the original aside once, and the undo touches only the new archive,
 * whatever point the run reached.
 */
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterEach, beforeEach, test} from 'node:test'

import {placeArchives, restoreArchives, stagedArchivePath} from '../../src/airgap/archive-ops.js'
import {LocalTransport} from '../../src/transport/local-transport.js'

const FILE = 'k3s-airgap-images-amd64.tar.zst'
const OLD = Buffer.from('old images\n')
const NEW = Buffer.from('new images\n')
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')
const transport = new LocalTransport({node: 'local', become: 'none'})
let dir: string

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'homelab-images-'))
})
afterEach(async () => {
  await rm(dir, {recursive: true, force: true})
})

async function contents(): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const file of (await readdir(dir)).sort()) out[file] = (await readFile(path.join(dir, file), 'utf8')).trim()
  return out
}

test('placed twice (a retried action), the original stays the kept one; the undo puts it back', async () => {
  await writeFile(path.join(dir, FILE), OLD)
  await writeFile(stagedArchivePath(dir, FILE), NEW)
  await placeArchives(transport, dir, [FILE])
  await placeArchives(transport, dir, [FILE])
  assert.deepEqual(await contents(), {[FILE]: 'new images', [`.${FILE}.homelab-prev`]: 'old images'})
  assert.deepEqual(await restoreArchives(transport, dir, [{file: FILE, hadPrevious: true, sha256: sha(NEW)}]), [])
  assert.deepEqual(await contents(), {[FILE]: 'old images'})
})

test('undo before the new archive was placed: the old one and nothing else, no download asked for', async () => {
  await writeFile(path.join(dir, FILE), OLD)
  await writeFile(stagedArchivePath(dir, FILE), NEW)
  assert.deepEqual(await restoreArchives(transport, dir, [{file: FILE, hadPrevious: true, sha256: sha(NEW)}]), [])
  assert.deepEqual(await contents(), {[FILE]: 'old images'})
})

test('undo after the kept archive was removed: the file is named for the caller to fetch again', async () => {
  await writeFile(path.join(dir, FILE), NEW)
  assert.deepEqual(await restoreArchives(transport, dir, [{file: FILE, hadPrevious: true, sha256: sha(NEW)}]), [FILE])
})

test('a node that had no archive: the new one is removed again, a file of its own is left alone', async () => {
  await writeFile(path.join(dir, FILE), NEW)
  await restoreArchives(transport, dir, [{file: FILE, hadPrevious: false, sha256: sha(NEW)}])
  assert.deepEqual(await contents(), {})
  await writeFile(path.join(dir, FILE), Buffer.from('the user put this here\n'))
  await restoreArchives(transport, dir, [{file: FILE, hadPrevious: false, sha256: sha(NEW)}])
  assert.deepEqual(await contents(), {[FILE]: 'the user put this here'})
})
