/**
 * Stands in for the yaml, toml and ini parsers in the bundle (`bundle.ts`): @effect/cli imports them for options
 * read from configuration files, which rangedocs has none of, and they were a sixth of what every command loaded.
 */
export const parse = (_content: string): never => {
  throw new Error("rangedocs reads no configuration files")
}
