/**
 * Read-only facts about how a distribution is installed on a node, for pre-flight: where the
 * binary is, whether a package manager owns it, and which packaged components are skipped.
 * Every value reaches the shell as a positional argument.
 */
import type {DistributionDescriptor} from '../distributions/index.js'
import type {Transport} from '../transport/types.js'
import {script} from './node-ops.js'

/** The first of the installer's bin dirs that holds an executable binary, or undefined. */
export async function findBinDir(transport: Transport, distribution: DistributionDescriptor, signal?: AbortSignal): Promise<string | undefined> {
  const out = await script(transport, FIND_BIN_DIR_SCRIPT, [distribution.binary, ...distribution.binDirs], {signal})
  return out.trim() || undefined
}

/** `$1` the binary's name, then the dirs: prints the first dir holding it executable. */
export const FIND_BIN_DIR_SCRIPT = 'b=$1; shift; for d in "$@"; do if [ -x "$d/$b" ]; then echo "$d"; break; fi; done'


export interface PackageOwner {
  manager: 'rpm' | 'dpkg'
  /** As the package manager names it: `rke2-common-1.31.3~rke2r1-0.el9.x86_64`, `rke2-common`. */
  name: string
}

/**
 * The package that owns `file`, asked of rpm and then dpkg where they exist. Overwriting a
 * package-owned file leaves the package database believing in a file that is gone.
 */
export async function packageOwner(transport: Transport, file: string, signal?: AbortSignal): Promise<PackageOwner | undefined> {
  return parsePackageOwner(await script(transport, PACKAGE_OWNER_SCRIPT, [file], {signal}))
}

/** Prints `rpm <package>` or `dpkg <dpkg -S line>` for the file `$1`, nothing when no package owns it. */
export const PACKAGE_OWNER_SCRIPT = 'if command -v rpm >/dev/null 2>&1 && o=$(rpm -qf "$1" 2>/dev/null); then echo "rpm $o"; elif command -v dpkg >/dev/null 2>&1 && o=$(dpkg -S "$1" 2>/dev/null); then echo "dpkg $o"; fi'

export function parsePackageOwner(out: string): PackageOwner | undefined {
  const line = out.trim().split('\n')[0] ?? ''
  const match = /^(rpm|dpkg) (.+)$/.exec(line)
  if (!match) return undefined
  // dpkg -S prints `package[, package]: path`.
  const name = match[1] === 'dpkg' ? match[2].split(':')[0].trim() : match[2].trim()
  return {manager: match[1] as PackageOwner['manager'], name}
}

/** The `*.skip` files in the server's packaged-manifests dir, relative to it, sorted. Root reads it: the dir is 0700. */
export async function skippedManifests(transport: Transport, manifestsDir: string, signal?: AbortSignal): Promise<string[]> {
  return parseSkippedManifests(await script(transport, SKIPPED_MANIFESTS_SCRIPT, [manifestsDir], {privileged: true, signal}))
}

/** Lists the `*.skip` files under the dir `$1` (run as root). */
export const SKIPPED_MANIFESTS_SCRIPT = 'if [ -d "$1" ]; then cd "$1" && find . -type f -name "*.skip" | sed "s|^\\./||"; fi'

export function parseSkippedManifests(out: string): string[] {
  return out
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .sort()
}
