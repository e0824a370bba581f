/**
 * Queries over a replica's entries (spec 03 §4). Immutable values with chainable builders.
 *
 * SingleLatestPerKey applies the author filter to individual entries *before* grouping (as the reference's code does):
 * with an author filter it returns, per key, that author's entry — not the key's newest entry overall.
 */
import { Schema } from "effect"
import { AuthorId } from "./Keys.js"

export const SortBy = Schema.Literal("AuthorKey", "KeyAuthor")
export type SortBy = typeof SortBy.Type
export const SortDirection = Schema.Literal("Asc", "Desc")
export type SortDirection = typeof SortDirection.Type

export const KeyFilter = Schema.Union(
  Schema.TaggedStruct("Any", {}),
  Schema.TaggedStruct("Exact", { key: Schema.Uint8ArrayFromSelf }),
  Schema.TaggedStruct("Prefix", { prefix: Schema.Uint8ArrayFromSelf })
)
export type KeyFilter = typeof KeyFilter.Type

export const QueryKind = Schema.Union(
  Schema.TaggedStruct("Flat", { sortBy: SortBy }),
  Schema.TaggedStruct("SingleLatestPerKey", {})
)
export type QueryKind = typeof QueryKind.Type

const Count = Schema.Int.pipe(Schema.nonNegative())

export class Query extends Schema.Class<Query>("Query")({
  kind: QueryKind,
  author: Schema.UndefinedOr(AuthorId),
  key: KeyFilter,
  limit: Schema.UndefinedOr(Count),
  offset: Count,
  includeEmpty: Schema.Boolean,
  direction: SortDirection
}) {
  /** All entries, ordered by (author, key) ascending. */
  static all(): Query {
    return new Query({
      kind: { _tag: "Flat", sortBy: "AuthorKey" },
      author: undefined,
      key: { _tag: "Any" },
      limit: undefined,
      offset: 0,
      includeEmpty: false,
      direction: "Asc"
    })
  }
  /** The newest entry per key, ordered by key ascending. */
  static singleLatestPerKey(): Query {
    return new Query({ ...Query.all(), kind: { _tag: "SingleLatestPerKey" } })
  }
  static author(author: AuthorId): Query {
    return Query.all().withAuthor(author)
  }
  static keyExact(key: Uint8Array): Query {
    return Query.all().withKeyExact(key)
  }
  static keyPrefix(prefix: Uint8Array): Query {
    return Query.all().withKeyPrefix(prefix)
  }
  withAuthor(author: AuthorId): Query {
    return new Query({ ...this, author })
  }
  withKeyExact(key: Uint8Array): Query {
    return new Query({ ...this, key: { _tag: "Exact", key } })
  }
  withKeyPrefix(prefix: Uint8Array): Query {
    return new Query({ ...this, key: { _tag: "Prefix", prefix } })
  }
  withLimit(limit: number): Query {
    return new Query({ ...this, limit })
  }
  withOffset(offset: number): Query {
    return new Query({ ...this, offset })
  }
  withIncludeEmpty(includeEmpty = true): Query {
    return new Query({ ...this, includeEmpty })
  }
  /** Flat queries: the sort order and direction. */
  sortBy(sortBy: SortBy, direction: SortDirection = "Asc"): Query {
    return new Query({ ...this, kind: { _tag: "Flat", sortBy }, direction })
  }
  /** SingleLatestPerKey queries: the direction of the key order. */
  sortDirection(direction: SortDirection): Query {
    return new Query({ ...this, direction })
  }
}
