import {resolveChannel} from '../channels.js'
import {PreflightError, VersionError} from '../errors.js'
import {isVersionString, looksLikeChannel, parseVersion, type Distribution, type ReleaseVersion} from '../versions/release-version.js'
import {classifyUpgrade, planHops} from '../versions/skew.js'

export interface TargetOptions {
  channelUrl: string
  distribution: Distribution
  signal?: AbortSignal
}

/** `--to`: an exact version, or a channel (`stable`, `latest`, `v1.31`) resolved now and pinned. */
export async function resolveTarget(to: string, options: TargetOptions): Promise<{version: ReleaseVersion; channel?: string}> {
  if (isVersionString(to, options.distribution)) return {version: parseVersion(to, options.distribution)}
  if (looksLikeChannel(to)) {
    const version = await resolveChannel(to, {baseUrl: options.channelUrl, distribution: options.distribution, signal: options.signal})
    return {version, channel: to}
  }
  // parseVersion's error says what forms are accepted.
  return {version: parseVersion(to, options.distribution)}
}

/**
 * The versions to pass through from the oldest node to the target, one minor at a time; the
 * newest of each minor in between comes from that minor's channel. With --no-hops, more than one
 * hop is a refusal, whether or not the channel server can name the minors in between.
 */
export async function planUpgradeHops(oldest: string, target: ReleaseVersion, options: TargetOptions & {noHops: boolean}): Promise<ReleaseVersion[]> {
  // An exact --to needs no channel, but the minors in between do: say so instead of "no channel v1.32" alone.
  const latestOfMinor = async (line: string) => {
    try {
      return await resolveChannel(line, {baseUrl: options.channelUrl, distribution: options.distribution, signal: options.signal})
    } catch (error) {
      if (!(error instanceof VersionError)) throw error
      throw new PreflightError(`${target.format()} is more than one minor version ahead of ${oldest}, and the ${line} release to pass through is unknown: ${error.message}; nothing was changed`, {
        cause: error,
        hint: `upgrade to a ${line} release first (give its exact version to --to), or point install.channelUrl at a channel server that lists ${line}`,
      })
    }
  }
  if (options.noHops && classifyUpgrade(oldest, target) === 'skip') {
    // Refused either way; the hops (when the channel server knows them) only make the fix exact.
    const hops = await planHops(oldest, target, latestOfMinor).catch(() => undefined)
    const first = hops?.[0]?.format() ?? `a v${target.major}.${parseVersion(oldest, target.distribution).minor + 1} release`
    throw new PreflightError(`${target.format()} is more than one minor version ahead of ${oldest}; nothing was changed`, {
      hint: `upgrade one minor at a time (first to ${first}), or drop --no-hops to let homelab pass through ${hops ? hops.slice(0, -1).map((h) => h.format()).join(', ') : 'each minor in between'}`,
    })
  }
  return planHops(oldest, target, latestOfMinor)
}
