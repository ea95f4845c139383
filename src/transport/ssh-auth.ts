import {existsSync} from 'node:fs'
import ssh2 from 'ssh2'
import type {AgentAuthMethod, BaseAgent, ParsedKey, PublicKeyAuthMethod} from 'ssh2'
import {ConnectionError} from '../errors.js'
import {quoteArg} from './quote.js'
import type {SshEndpoint} from './ssh-config.js'
import type {SshContext} from './ssh-context.js'
import {SshKeyStore} from './ssh-keys.js'

const {utils} = ssh2
// BaseAgent is a runtime class in ssh2 but typed abstract; take the constructor from the module.
const BaseAgentClass = (ssh2 as unknown as {BaseAgent: new () => BaseAgent}).BaseAgent
const createAgent = (ssh2 as unknown as {createAgent: (path: string) => BaseAgent}).createAgent

export type AuthMethod = AgentAuthMethod | PublicKeyAuthMethod

/**
 * How we log in, as ssh does: the agent's keys first (only those of the identity files with
 * IdentitiesOnly), then each readable identity file, asking for a passphrase when needed.
 */
export class SshAuth {
  /** Shared by the run's connections when the caller passes one (a reconnect never asks again either way). */
  private readonly keys: SshKeyStore

  constructor(private readonly ctx: SshContext) {
    this.keys = ctx.options.keys ?? new SshKeyStore()
  }

  /** The methods to offer `endpoint`, and what they are in words for an auth failure. */
  async methods(endpoint: SshEndpoint): Promise<{methods: AuthMethod[]; tried: string[]}> {
    const methods: AuthMethod[] = []
    const tried: string[] = []
    const username = endpoint.user
    const socket = endpoint.identityAgent === 'none' ? undefined : (endpoint.identityAgent ?? this.ctx.env.SSH_AUTH_SOCK)
    let agent: BaseAgent | undefined
    let agentKeys: ParsedKey[] = []
    if (socket && existsSync(socket)) {
      agent = createAgent(socket)
      agentKeys = await agentIdentities(agent)
    }
    const fileKeys: ParsedKey[] = []
    const publicKeys: Buffer[] = []
    for (const path of endpoint.identityFiles) {
      const loaded = await this.loadIdentity(path, endpoint.identityFilesAreDefaults, agentKeys)
      if (loaded.publicKey) publicKeys.push(loaded.publicKey)
      if (loaded.key) {
        fileKeys.push(loaded.key)
        tried.push(this.ctx.tilde(path))
      }
    }
    if (agent && agentKeys.length > 0) {
      const offered = endpoint.identitiesOnly ? filteredAgent(agent, publicKeys) : agent
      methods.push({type: 'agent', username, agent: offered})
      tried.unshift(`the SSH agent (${agentKeys.length} key${agentKeys.length === 1 ? '' : 's'})`)
    }
    for (const key of fileKeys) methods.push({type: 'publickey', username, key})
    return {methods, tried}
  }

  /** A private key ready to sign with, or only its public half when the agent holds it. */
  private async loadIdentity(
    path: string,
    isDefault: boolean,
    agentKeys: readonly ParsedKey[],
  ): Promise<{key?: ParsedKey; publicKey?: Buffer}> {
    const {ctx} = this
    const file = await this.keys.read(path)
    if ('readError' in file) {
      // OpenSSH's default names are only tried when present; a configured one is worth a word.
      if (!isDefault) ctx.emit({type: 'identity-skipped', node: ctx.node, path, reason: file.readError})
      return {}
    }
    let {parsed} = file
    if (parsed instanceof Error && /no passphrase given/i.test(parsed.message)) {
      const publicKey = await this.keys.publicHalf(path)
      if (publicKey && agentKeys.some((k) => k.getPublicSSH().equals(publicKey))) {
        // The agent signs with this key: no need to ask for its passphrase.
        return {publicKey}
      }
      const decrypted = await this.keys.unlock(path, () => this.decrypt(path, file.data))
      if (decrypted === undefined) return {publicKey}
      parsed = decrypted
    }
    if (parsed instanceof Error) {
      ctx.emit({type: 'identity-skipped', node: ctx.node, path, reason: `unusable key: ${parsed.message}`})
      return {}
    }
    const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey) : parsed
    if (!key.isPrivateKey()) {
      ctx.emit({type: 'identity-skipped', node: ctx.node, path, reason: 'not a private key'})
      return {}
    }
    return {key, publicKey: key.getPublicSSH()}
  }

  /** The passphrase from the variable, else up to three answers; undefined when there is no way to get one. */
  private async decrypt(path: string, data: Buffer): Promise<ParsedKey | Error | undefined> {
    const {ctx} = this
    const varName = ctx.options.passphraseEnvVar ?? 'HOMELAB_SSH_PASSPHRASE'
    const fromEnv = ctx.env[varName]
    const attempts: Array<() => Promise<string | undefined>> = []
    if (fromEnv !== undefined && fromEnv !== '') attempts.push(async () => fromEnv)
    if (ctx.options.askPassphrase) {
      const ask = ctx.options.askPassphrase
      for (let i = 0; i < 3; i++) attempts.push(() => ask(path))
    }
    if (attempts.length === 0) {
      ctx.emit({type: 'identity-skipped', node: ctx.node, path, reason: `encrypted; set ${varName} or run on a terminal to be asked`})
      return undefined
    }
    for (const attempt of attempts) {
      const passphrase = await attempt()
      if (passphrase === undefined) break
      const parsed = utils.parseKey(data, passphrase)
      if (!(parsed instanceof Error)) return parsed
      if (!/passphrase|integrity|decrypt/i.test(parsed.message)) return parsed
    }
    throw new ConnectionError(`wrong passphrase for SSH key ${ctx.tilde(path)}`, {
      hint: `set ${varName} to the key's passphrase (or type it when asked), or load the key into ssh-agent with \`ssh-add ${quoteArg(ctx.tilde(path))}\``,
    })
  }
}

/** An agent that only offers the keys of the configured identity files (IdentitiesOnly). */
function filteredAgent(inner: BaseAgent, allowed: Buffer[]): BaseAgent {
  const agent = new BaseAgentClass() as BaseAgent & Record<string, unknown>
  agent.getIdentities = (cb: (err: Error | undefined, keys?: ParsedKey[]) => void) => {
    inner.getIdentities((err, keys) => {
      if (err || !keys) return cb(err ?? undefined, keys as ParsedKey[] | undefined)
      cb(undefined, (keys as ParsedKey[]).filter((k) => allowed.some((a) => a.equals(k.getPublicSSH()))))
    })
  }
  agent.sign = (...args: unknown[]) => (inner.sign as (...a: unknown[]) => void)(...args)
  return agent
}

function agentIdentities(agent: BaseAgent): Promise<ParsedKey[]> {
  return new Promise((resolve) => {
    // An agent that cannot be reached just offers nothing, as with ssh.
    agent.getIdentities((err, keys) => resolve(err || !keys ? [] : (keys as ParsedKey[])))
  })
}
