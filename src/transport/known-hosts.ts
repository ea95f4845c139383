import {createHash, createHmac, timingSafeEqual} from 'node:crypto'
import {appendFile, chmod, mkdir, readFile, stat} from 'node:fs/promises'
import {dirname} from 'node:path'

/**
 * OpenSSH known_hosts, read the way `ssh` reads it: host patterns (comma lists, `*`/`?`
 * wildcards, `!` negation, `[host]:port` for non-22 ports), hashed names (`|1|salt|hmac`),
 * `@revoked` keys, and `@cert-authority` lines (host certificates are not supported, so those
 * lines never vouch for a key).
 */

export type HostKeyStatus = 'match' | 'unknown' | 'changed' | 'revoked'

export interface KnownHostsEntry {
  marker?: 'revoked' | 'cert-authority'
  /** The host field as written: a pattern list, or one hashed name. */
  hosts: string
  keyType: string
  key: Buffer
  line: number
}

/** The name OpenSSH looks up: `host`, or `[host]:port` when the port is not 22. */
export function knownHostsName(host: string, port = 22): string {
  const h = host.toLowerCase()
  return port === 22 ? h : `[${h}]:${port}`
}

export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = []
  const lines = text.split(/\r?\n/)
  for (const [index, rawLine] of lines.entries()) {
    const line = rawLine.trim()
    if (line === '' || line.startsWith('#')) continue
    const fields = line.split(/\s+/)
    let marker: KnownHostsEntry['marker']
    if (fields[0]?.startsWith('@')) {
      const m = fields.shift()
      if (m === '@revoked') marker = 'revoked'
      else if (m === '@cert-authority') marker = 'cert-authority'
      else continue // an unknown marker: OpenSSH skips the line too
    }
    const [hosts, keyType, keyBase64] = fields
    if (!hosts || !keyType || !keyBase64) continue
    const key = Buffer.from(keyBase64, 'base64')
    // Buffer.from ignores junk; a key that does not round-trip is a corrupt line, not a key.
    if (key.length === 0 || key.toString('base64').replace(/=+$/, '') !== keyBase64.replace(/=+$/, '')) continue
    entries.push({marker, hosts, keyType, key, line: index + 1})
  }
  return entries
}

/** OpenSSH's glob: `*` any run of characters, `?` exactly one; case-insensitive. */
export function matchPattern(name: string, pattern: string): boolean {
  const n = name.toLowerCase()
  const p = pattern.toLowerCase()
  // Iterative matcher with one backtrack point for the last `*`: linear-ish, no regex building.
  let ni = 0
  let pi = 0
  let star = -1
  let mark = 0
  while (ni < n.length) {
    if (pi < p.length && (p[pi] === '?' || p[pi] === n[ni])) {
      ni++
      pi++
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++
      mark = ni
    } else if (star !== -1) {
      pi = star + 1
      ni = ++mark
    } else {
      return false
    }
  }
  while (pi < p.length && p[pi] === '*') pi++
  return pi === p.length
}

/** A comma list of patterns: any negated match vetoes, otherwise any plain match wins. */
export function matchHostList(name: string, list: string): boolean {
  let matched = false
  for (const item of list.split(',')) {
    if (item === '') continue
    if (item.startsWith('!')) {
      if (matchPattern(name, item.slice(1))) return false
    } else if (matchPattern(name, item)) {
      matched = true
    }
  }
  return matched
}

function matchHashed(name: string, hashed: string): boolean {
  // |1|base64(salt)|base64(HMAC-SHA1(salt, name))
  const parts = hashed.split('|')
  if (parts.length !== 4 || parts[1] !== '1') return false
  const salt = Buffer.from(parts[2]!, 'base64')
  const expected = Buffer.from(parts[3]!, 'base64')
  const actual = createHmac('sha1', salt).update(name).digest()
  return expected.length === actual.length && timingSafeEqual(expected, actual)
}

export function entryMatchesHost(entry: KnownHostsEntry, host: string, port = 22): boolean {
  const name = knownHostsName(host, port)
  if (entry.hosts.startsWith('|')) return matchHashed(name, entry.hosts)
  return matchHostList(name, entry.hosts)
}

/** The key type written at the start of an SSH public key blob (`ssh-ed25519`, ...). */
export function keyBlobType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined
  const len = blob.readUInt32BE(0)
  if (len === 0 || len > 64 || 4 + len > blob.length) return undefined
  return blob.subarray(4, 4 + len).toString('latin1')
}

/**
 * Judge a presented host key against known_hosts text. A revoked key is refused whatever
 * host pattern its line carries ("must never be accepted"). Lines of another key type do not
 * make a key "changed": a host may have several keys, as in OpenSSH.
 */
export function checkHostKeyText(text: string, host: string, port: number, keyType: string, keyBlob: Buffer): HostKeyStatus {
  return checkHostKeyEntries(parseKnownHosts(text), host, port, keyType, keyBlob)
}

function checkHostKeyEntries(entries: readonly KnownHostsEntry[], host: string, port: number, keyType: string, keyBlob: Buffer): HostKeyStatus {
  if (entries.some((e) => e.marker === 'revoked' && e.key.equals(keyBlob))) return 'revoked'
  let sawSameType = false
  for (const entry of entries) {
    if (entry.marker !== undefined) continue
    if (!entryMatchesHost(entry, host, port)) continue
    if (entry.keyType !== keyType) continue
    if (entry.key.equals(keyBlob)) return 'match'
    sawSameType = true
  }
  return sawSameType ? 'changed' : 'unknown'
}

/** Key types known_hosts holds for this host (used to prefer those in the key exchange). */
export function knownKeyTypesText(text: string, host: string, port: number): string[] {
  return knownKeyTypesOf(parseKnownHosts(text), host, port)
}

function knownKeyTypesOf(entries: readonly KnownHostsEntry[], host: string, port: number): string[] {
  const types = new Set<string>()
  for (const entry of entries) {
    if (entry.marker === undefined && entryMatchesHost(entry, host, port)) types.add(entry.keyType)
  }
  return [...types]
}

// Parsed files by path, each with the stat it was read at: every connection asks (200 nodes, two
// questions each), and a stat is far cheaper than reading and parsing the file again; a file
// changed since (ours appended to, or edited by hand) has another stat and is read again.
const parsedFiles = new Map<string, {stamp: string; entries: KnownHostsEntry[]}>()

async function entriesOf(file: string): Promise<readonly KnownHostsEntry[]> {
  const s = await unlessMissing(stat(file, {bigint: true}))
  if (!s) return []
  const stamp = `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`
  const cached = parsedFiles.get(file)
  if (cached?.stamp === stamp) return cached.entries
  const entries = parseKnownHosts((await unlessMissing(readFile(file, 'utf8'))) ?? '')
  parsedFiles.set(file, {stamp, entries})
  return entries
}

/** A missing file (ENOENT) is undefined: no known_hosts is an empty one. */
async function unlessMissing<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/**
 * Check a key against one or more known_hosts files (like UserKnownHostsFile with several
 * names): revoked anywhere wins, then a match anywhere, then changed, else unknown.
 */
export async function checkHostKey(
  file: string | readonly string[],
  host: string,
  port: number,
  keyType: string,
  keyBlob: Buffer,
): Promise<HostKeyStatus> {
  const files = typeof file === 'string' ? [file] : file
  const results: HostKeyStatus[] = []
  for (const f of files) results.push(checkHostKeyEntries(await entriesOf(f), host, port, keyType, keyBlob))
  for (const verdict of ['revoked', 'match', 'changed'] as const) {
    if (results.includes(verdict)) return verdict
  }
  return 'unknown'
}

export async function knownKeyTypes(file: string | readonly string[], host: string, port: number): Promise<string[]> {
  const files = typeof file === 'string' ? [file] : file
  const types = new Set<string>()
  for (const f of files) for (const t of knownKeyTypesOf(await entriesOf(f), host, port)) types.add(t)
  return [...types]
}

/** `SHA256:<base64 without padding>`, as `ssh-keygen -l` and `ssh` print it. */
export function sha256Fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`
}

/** `<type> <base64>` for a key blob: the part of a known_hosts line after the host. */
export function hostKeyLine(keyBlob: Buffer): string {
  const type = keyBlobType(keyBlob)
  if (!type) throw new TypeError('not an SSH public key blob')
  return `${type} ${keyBlob.toString('base64')}`
}

/**
 * Add `host keytype base64` to a known_hosts file, creating the directory (0700) and file
 * (0600) when missing. Written in plain form, as OpenSSH does with Debian's default
 * `HashKnownHosts no`, so people can read and edit what we trusted.
 */
export async function appendKnownHost(file: string, host: string, port: number, keyLine: string): Promise<void> {
  const [keyType, keyBase64] = keyLine.trim().split(/\s+/)
  if (!keyType || !keyBase64) throw new TypeError(`not a public key line: ${JSON.stringify(keyLine)}`)
  const dir = dirname(file)
  await mkdir(dir, {recursive: true, mode: 0o700})
  let existing = ''
  let created = false
  try {
    existing = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    created = true
  }
  const separator = existing === '' || existing.endsWith('\n') ? '' : '\n'
  await appendFile(file, `${separator}${knownHostsName(host, port)} ${keyType} ${keyBase64}\n`, {mode: 0o600})
  if (created) {
    // appendFile's mode is filtered by the umask; make sure a new file is private anyway.
    const st = await stat(file)
    if ((st.mode & 0o777) !== 0o600) await chmod(file, 0o600)
  }
}
