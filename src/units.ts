/** Bytes as MiB with one decimal, as progress and plans show sizes: `812.4 MiB`. */
export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}
