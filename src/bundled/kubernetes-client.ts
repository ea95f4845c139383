/**
 * The one module that takes values (classes, functions) from @kubernetes/client-node; types are
 * imported from the package directly, since they do not exist at run time.
 *
 * Why one door: the package's entry imports every generated API and model, ~900 modules with
 * its dependencies, and Node loading them one by one was ~0.45 s of the start-up of every
 * command that talks to the API. The build (commands/_cli/bundle-dependencies.ts) replaces each
 * module in src/bundled with one file holding the package and its dependencies, which loads in
 * ~0.15 s. Run from the sources (bin/dev.js, the tests through tsx), this is a plain re-export
 * of the same package.
 */
export {
  ApiextensionsV1Api,
  AppsV1Api,
  BatchV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  Health,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
  V1MicroTime,
  Watch,
} from '@kubernetes/client-node'
