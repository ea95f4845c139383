import path from 'node:path'

import type {DistributionDescriptor} from '../distributions/index.js'
import {CommandError} from '../errors.js'
import type {Transport} from '../transport/types.js'

export function binaryPath(distribution: DistributionDescriptor, binDir: string): string {
  return path.posix.join(binDir, distribution.binary)
}

/**
 * The version of the binary on the node's disk, which may differ from what is running: the first
 * line of `<binary> --version` (`k3s version v1.31.4+k3s1 (abcdef12)`, `rke2 version v1.31.3+rke2r1 (…)`).
 */
export async function readInstalledVersion(transport: Transport, distribution: DistributionDescriptor, binDir: string, signal?: AbortSignal): Promise<string> {
  const binary = binaryPath(distribution, binDir)
  return parseInstalledVersion(transport.node, distribution, binary, await transport.run([binary, '--version'], {signal, timeoutMs: 30_000}))
}

/** The version in `<binary> --version`'s output, or the error naming the binary. */
export function parseInstalledVersion(node: string, distribution: DistributionDescriptor, binary: string, output: string): string {
  const match = new RegExp(`^${distribution.binary} version (v\\S+)`, 'm').exec(output)
  if (!match) {
    throw new CommandError(`${node}: ${binary} --version printed no ${distribution.name} version`, 0, output.slice(0, 200), {
      hint: `check that ${binary} is the ${distribution.name} binary (install.binDir in homelab.yaml)`,
    })
  }
  return match[1]
}
