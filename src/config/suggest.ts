/**
 * "Did you mean" for misspelt keys. Compares case- and separator-insensitively (so
 * `ignoreDaemonSets`, `ignore_daemonsets` and `ignoreDaemonsets` meet), and also against the last
 * words of a camelCase key, so `concurency` finds `agentConcurrency`.
 */
export function closestKeys(typed: string, known: readonly string[]): string[] {
  const t = normalize(typed)
  let best = Infinity
  let keys: string[] = []
  for (const key of known) {
    const distance = Math.min(...forms(key).map((form) => (levenshtein(t, form) <= allowed(form) ? levenshtein(t, form) : Infinity)))
    if (distance < best) {
      best = distance
      keys = [key]
    } else if (distance === best && distance !== Infinity) {
      keys.push(key)
    }
  }
  // Ties are reported together (`timeout` → connectTimeout or commandTimeout); many ties help no one.
  return keys.length <= 3 ? keys : []
}

function normalize(key: string): string {
  return key.toLowerCase().replace(/[-_\s]/g, '')
}

/** The key itself and its camelCase tails: agentConcurrency → agentconcurrency, concurrency. */
function forms(key: string): string[] {
  const words = key.split(/(?=[A-Z])/)
  return words.map((_, i) => normalize(words.slice(i).join(''))).filter((f) => f.length >= 4 || f === normalize(key))
}

function allowed(form: string): number {
  return form.length <= 4 ? 1 : form.length <= 8 ? 2 : 3
}

function levenshtein(a: string, b: string): number {
  const prev = Array.from({length: b.length + 1}, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]
    prev[0] = i
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1))
      diag = up
    }
  }
  return prev[b.length]
}
