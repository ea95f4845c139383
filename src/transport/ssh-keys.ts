import {readFile} from 'node:fs/promises'
import ssh2 from 'ssh2'
import type {ParsedKey} from 'ssh2'

const {utils} = ssh2

/** An identity file as read: its bytes and ssh2's parse of them, or why it could not be read. */
export type IdentityFile = {data: Buffer; parsed: ParsedKey | ParsedKey[] | Error} | {readError: string}

/**
 * The identity files of one run, each read, parsed and (when encrypted) unlocked once and shared
 * by every node's connection: 200 nodes log in with the same key, and parsing it 200 times is
 * measurable CPU, while asking for its passphrase 200 times (16 prompts at once) is unusable.
 * Keys stay in memory only.
 */
export class SshKeyStore {
  private readonly files = new Map<string, Promise<IdentityFile>>()
  private readonly publicHalves = new Map<string, Promise<Buffer | undefined>>()
  private readonly unlocked = new Map<string, Promise<ParsedKey | Error | undefined>>()

  read(path: string): Promise<IdentityFile> {
    return once(this.files, path, async () => {
      try {
        const data = await readFile(path)
        return {data, parsed: utils.parseKey(data)}
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        return {readError: code === 'ENOENT' ? 'no such file' : String(code)}
      }
    })
  }

  /** The `<path>.pub` beside an encrypted key, so the agent's copy can be recognised without the passphrase. */
  publicHalf(path: string): Promise<Buffer | undefined> {
    return once(this.publicHalves, path, async () => {
      try {
        const parsed = utils.parseKey(await readFile(`${path}.pub`))
        return parsed instanceof Error ? undefined : (Array.isArray(parsed) ? (parsed[0] as ParsedKey) : parsed).getPublicSSH()
      } catch {
        return undefined
      }
    })
  }

  /** The encrypted key at `path` decrypted by `decrypt` (asked once; a wrong passphrase fails every node alike). */
  unlock(path: string, decrypt: () => Promise<ParsedKey | Error | undefined>): Promise<ParsedKey | Error | undefined> {
    return once(this.unlocked, path, decrypt)
  }
}

function once<T>(cache: Map<string, Promise<T>>, key: string, make: () => Promise<T>): Promise<T> {
  let found = cache.get(key)
  if (!found) {
    found = make()
    cache.set(key, found)
  }
  return found
}
