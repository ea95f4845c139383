/**
 * Build step: replaces the compiled modules of src/bundled (each a re-export of one package)
 * with one file holding that package and its dependencies. Node loads an ES module graph file
 * by file: @kubernetes/client-node is ~900 modules (its entry imports every generated API and
 * model), ~0.45 s of every API command's start-up on a small machine and ~0.15 s as one file;
 * zod is ~110, ~0.1 s and ~0.05 s. Same code, the versions package-lock.json pins; nothing else
 * in dist is bundled.
 */
import {readdir, readFile, rm} from 'node:fs/promises'
import path from 'node:path'

import {build} from 'esbuild'

const root = path.resolve(process.argv[2] ?? '.')
const dir = path.join(root, 'dist', 'src', 'bundled')
const files = (await readdir(dir)).filter((name) => name.endsWith('.js')).map((name) => path.join(dir, name))
if (files.length === 0) throw new Error(`nothing to bundle in ${dir}: run the whole build, which compiles it first`)
for (const file of files) {
  const compiled = await readFile(file, 'utf8')
  // tsc writes a short re-export; a bundle bundled again would declare its require twice.
  if (compiled.length > 10_000) throw new Error(`${file} is not tsc's output (already bundled?): run the whole build`)
  const result = await build({
    entryPoints: [file],
    outfile: file,
    allowOverwrite: true,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // CommonJS dependencies in an ES module bundle need a real require() for Node's built-ins.
    banner: {js: "import {createRequire as homelabCreateRequire} from 'node:module'\nconst require = homelabCreateRequire(import.meta.url)\n"},
    logLevel: 'warning',
    metafile: true,
  })
  // tsc's source map describes the re-export, not the bundle.
  await rm(`${file}.map`, {force: true})
  process.stdout.write(`bundled ${path.relative(process.cwd(), file) || file} (${Object.keys(result.metafile.inputs).length} modules)\n`)
}
