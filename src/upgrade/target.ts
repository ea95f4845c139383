import {resolveChannel} from '../channels.js'
import {PreflightError} from '../errors.js'
import {isVersionString, looksLikeChannel, parseVersion, type Distribution, type ReleaseVersion} from '../versions/release-version.js'
import {planHops} from '../versions/skew.js'

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
 * hop is a refusal.
 */
export async function planUpgradeHops(oldest: string, target: ReleaseVersion, options: TargetOptions & {noHops: boolean}): Promise<ReleaseVersion[]> {
  const hops = await planHops(oldest, target, (line) => resolveChannel(line, {baseUrl: options.channelUrl, distribution: options.distribution, signal: options.signal}))
  if (hops.length > 1 && options.noHops) {
    throw new PreflightError(`${target.format()} is more than one minor version ahead of ${oldest}; nothing was changed`, {
      hint: `upgrade one minor at a time (first to ${hops[0].format()}), or drop --no-hops to let homelab pass through ${hops.slice(0, -1).map((h) => h.format()).join(', ')}`,
    })
  }
  return hops
}
