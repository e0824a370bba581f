/**
 * An instance of a Schema class built from fields the caller has already checked (a decoder's output, a stored
 * entry): `new C(fields, true)` still merges defaults and copies every field, a cost that shows on paths run once
 * per gossiped write. Give the fields in the class's field order with `_tag` last, as its constructor does, so that
 * structural hashes and key order match constructed instances.
 */
export const trusted = <A>(proto: A, fields: object): A =>
  Object.assign(Object.create(proto as object) as object, fields) as A
