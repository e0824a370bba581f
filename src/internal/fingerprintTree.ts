/**
 * An order-statistic B+tree over byte-string keys (latin1 JS strings, so `<` is unsigned bytewise order) that carries a
 * 32-byte fingerprint per key, for range-based set reconciliation: rank, select and the XOR of the fingerprints over a
 * rank interval are all O(log n).
 *
 * Invariants (checked by `checkInvariants`):
 * - All leaves are at the same depth and linked in key order by `next` (range scans need no path stack).
 * - A leaf holds `keys` strictly ascending; the fingerprint of `keys[i]` is `fps[32i, 32i+32)`. Fingerprints are packed
 *   into one buffer per leaf (with a Uint32 view over it) so that 1M keys cost ~16k objects, not 1M. fromSorted carves
 *   those buffers out of shared slabs; a slab stays alive while any of its leaves does (bounded by the bulk size).
 * - An internal node keeps, per child i: `counts[i]` (keys below it) and `w[8i, 8i+8)` (XOR of their fingerprints), so
 *   rank/select/prefix-XOR never visit a subtree they do not cut.
 * - `seps[i]` (i ≥ 1) separates children: every key of child i−1 < seps[i] ≤ every key of child i. It need not be a
 *   present key, so deleting a child's first key never has to touch the ancestors. `seps[0]` is unused ("").
 * - Every node but the root holds between ⌊cap/2⌋ and cap entries (cap + 1 slots are allocated so that an insertion can
 *   overflow before the split); a root that is internal has ≥ 2 children. Hence depth is O(log n).
 * - `total` is the XOR of all fingerprints: the root's aggregate, which lets a prefix XOR at any node be taken from
 *   whichever side is shorter (the node's aggregate XOR the children after the cut).
 */

const FP = 32
const W = 8

const DEFAULT_LEAF_CAPACITY = 64
/** xorRange scans ranges of at most this many keys instead of combining two prefix XORs. */
const SCAN_RANGE = 24
const DEFAULT_INNER_CAPACITY = 32

export interface FingerprintTreeOptions {
  /** Maximum keys per leaf (≥ 4). */
  readonly leafCapacity?: number
  /** Maximum children per internal node (≥ 4). */
  readonly innerCapacity?: number
}

class Leaf {
  readonly fps: Uint8Array
  readonly w: Uint32Array
  next: Leaf | undefined = undefined
  /** `slab`, when given, is a shared buffer (see fromSorted) of which this leaf takes the slot at byte `at`. */
  constructor(
    public keys: Array<string>,
    cap: number,
    slab?: ArrayBuffer,
    at = 0
  ) {
    const bytes = (cap + 1) * FP
    const buffer = slab ?? new ArrayBuffer(bytes)
    this.fps = new Uint8Array(buffer, at, bytes)
    this.w = new Uint32Array(buffer, at, bytes >> 2)
  }
}

/** Leaves that fromSorted carves out of one buffer: thousands of small ArrayBuffers cost far more to allocate. */
const SLAB_LEAVES = 256

class Inner {
  readonly w: Uint32Array
  constructor(
    public children: Array<Node>,
    public seps: Array<string>,
    public counts: Array<number>,
    cap: number
  ) {
    this.w = new Uint32Array((cap + 1) * W)
  }
}

type Node = Leaf | Inner

const xorInto = (dst: Uint32Array, d: number, src: Uint32Array, s: number): void => {
  dst[d] ^= src[s]!
  dst[d + 1] ^= src[s + 1]!
  dst[d + 2] ^= src[s + 2]!
  dst[d + 3] ^= src[s + 3]!
  dst[d + 4] ^= src[s + 4]!
  dst[d + 5] ^= src[s + 5]!
  dst[d + 6] ^= src[s + 6]!
  dst[d + 7] ^= src[s + 7]!
}

/** XORs the fingerprints in slots [from, to) of `src` into `dst[0, 8)`. */
const xorSlots = (dst: Uint32Array, src: Uint32Array, from: number, to: number): void => {
  for (let s = from * W, e = to * W; s < e; s += W) xorInto(dst, 0, src, s)
}

/** First index whose key is ≥ key. */
const lowerBound = (keys: Array<string>, key: string): number => {
  let lo = 0
  let hi = keys.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (keys[mid]! < key) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** The child whose key interval contains key: the last i with i = 0 or seps[i] ≤ key. */
const childIndex = (seps: Array<string>, key: string): number => {
  let lo = 1
  let hi = seps.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (seps[mid]! <= key) lo = mid + 1
    else hi = mid
  }
  return lo - 1
}

const checkFp = (fp: Uint8Array): void => {
  if (fp.length !== FP) throw new RangeError(`fingerprint must be ${FP} bytes, got ${fp.length}`)
}

const checkCapacity = (cap: number, what: string): number => {
  if (!Number.isInteger(cap) || cap < 4 || cap > 1 << 16) throw new RangeError(`${what} must be an integer in [4, 65536]`)
  return cap
}

export class FingerprintTree {
  private root: Node
  private _size = 0
  private _height = 1
  private readonly leafCap: number
  private readonly innerCap: number
  private readonly leafMin: number
  private readonly innerMin: number
  /** XOR of all fingerprints (the root's aggregate). */
  private readonly total = new Uint32Array(W)
  /** Scratch: a delta or a moved aggregate. */
  private readonly tmp = new Uint32Array(W)
  /** Scratch accumulator for prefix XORs, with a byte view for copying out. */
  private readonly acc = new Uint32Array(W)
  private readonly acc8 = new Uint8Array(this.acc.buffer)
  /** The descent path of the last `descend`: ancestors and the child index taken in each. */
  private readonly pathNode: Array<Inner> = []
  private readonly pathIdx: Array<number> = []
  /** Set by `locate`: the slot of the located rank in its leaf. */
  private offset = 0

  constructor(options: FingerprintTreeOptions = {}) {
    this.leafCap = checkCapacity(options.leafCapacity ?? DEFAULT_LEAF_CAPACITY, "leafCapacity")
    this.innerCap = checkCapacity(options.innerCapacity ?? DEFAULT_INNER_CAPACITY, "innerCapacity")
    this.leafMin = this.leafCap >> 1
    this.innerMin = this.innerCap >> 1
    this.root = new Leaf([], this.leafCap)
  }

  /**
   * Builds a tree in O(n) from entries in strictly ascending key order (throws otherwise). Leaves are filled to
   * capacity, so the structure is as compact as it gets; the first insertion into a full leaf splits it.
   */
  static fromSorted(
    entries: Iterable<readonly [string, Uint8Array]>,
    options: FingerprintTreeOptions = {}
  ): FingerprintTree {
    const keys: Array<string> = []
    const chunks: Array<Uint8Array> = []
    for (const entry of entries) {
      checkFp(entry[1])
      keys.push(entry[0])
      chunks.push(entry[1])
    }
    const fps = new Uint8Array(keys.length * FP)
    chunks.forEach((fp, i) => fps.set(fp, i * FP))
    return FingerprintTree.fromSortedPacked(keys, fps, options)
  }

  /**
   * fromSorted over parallel arrays: `keys[i]` has the fingerprint `fps[32i, 32i+32)`. No per-entry object is
   * allocated (the index of a million-entry namespace is built from two arrays).
   */
  static fromSortedPacked(
    keys: ReadonlyArray<string>,
    fps: Uint8Array,
    options: FingerprintTreeOptions = {}
  ): FingerprintTree {
    if (fps.length !== keys.length * FP) throw new RangeError(`fromSortedPacked: ${keys.length} keys need ${keys.length * FP} fingerprint bytes`)
    const tree = new FingerprintTree(options)
    const cap = tree.leafCap
    const leaves: Array<Leaf> = []
    let cur = tree.root as Leaf
    let leafFps = cur.fps
    // Keys are gathered in a scratch array and sliced out per leaf: an exact-size packed array, no regrowth.
    const pending: Array<string> = Array.from({ length: cap }, () => "")
    let n = 0
    let size = 0
    let prev: string | undefined
    const leafBytes = (cap + 1) * FP
    let slab = new ArrayBuffer(0)
    let slot = SLAB_LEAVES
    for (let e = 0; e < keys.length; e++) {
      const key = keys[e]!
      if (prev !== undefined && !(prev < key)) {
        throw new RangeError("fromSorted: keys must be strictly ascending")
      }
      prev = key
      if (n === cap) {
        cur.keys = pending.slice(0, n)
        leaves.push(cur)
        if (slot === SLAB_LEAVES) {
          slab = new ArrayBuffer(SLAB_LEAVES * leafBytes)
          slot = 0
        }
        const next = new Leaf([], cap, slab, slot++ * leafBytes)
        cur.next = next
        cur = next
        leafFps = cur.fps
        n = 0
      }
      for (let b = 0, from = e * FP, to = n * FP; b < FP; b++) leafFps[to + b] = fps[from + b]!
      pending[n++] = key
      size++
    }
    cur.keys = pending.slice(0, n)
    tree._size = size
    leaves.push(cur)
    if (leaves.length > 1 && n < tree.leafMin) {
      // The last leaf is underfull: share with the (full) one before it.
      const left = leaves[leaves.length - 2]!
      const k = (left.keys.length - n) >> 1
      const from = left.keys.length - k
      cur.fps.copyWithin(k * FP, 0, n * FP)
      cur.fps.set(left.fps.subarray(from * FP, left.keys.length * FP), 0)
      cur.keys = left.keys.splice(from).concat(cur.keys)
    }

    // Build the internal levels bottom-up, grouping each level evenly into nodes of ⌈len / cap⌉ groups.
    let level: Array<Node> = leaves
    let mins: Array<string> = leaves.map((l) => l.keys[0] ?? "")
    let counts: Array<number> = leaves.map((l) => l.keys.length)
    let aggs = new Uint32Array(leaves.length * W)
    for (let i = 0; i < leaves.length; i++) {
      const leaf = leaves[i]!
      const a = i * W
      for (let s = 0, e = leaf.keys.length * W; s < e; s += W) xorInto(aggs, a, leaf.w, s)
    }
    for (let i = 0; i < aggs.length; i += W) xorInto(tree.total, 0, aggs, i)
    let height = 1
    const icap = tree.innerCap
    while (level.length > 1) {
      const len = level.length
      const groups = Math.ceil(len / icap)
      const base = Math.floor(len / groups)
      const extra = len % groups
      const nextLevel: Array<Node> = []
      const nextMins: Array<string> = []
      const nextCounts: Array<number> = []
      const nextAggs = new Uint32Array(groups * W)
      let start = 0
      for (let g = 0; g < groups; g++) {
        const end = start + base + (g < extra ? 1 : 0)
        const seps = mins.slice(start, end)
        seps[0] = ""
        const cs = counts.slice(start, end)
        const node = new Inner(level.slice(start, end), seps, cs, icap)
        node.w.set(aggs.subarray(start * W, end * W))
        let c = 0
        for (const x of cs) c += x
        nextCounts.push(c)
        nextMins.push(mins[start]!)
        xorSlots(tree.tmp.fill(0), node.w, 0, end - start)
        nextAggs.set(tree.tmp, g * W)
        nextLevel.push(node)
        start = end
      }
      level = nextLevel
      mins = nextMins
      counts = nextCounts
      aggs = nextAggs
      height++
    }
    tree.root = level[0]!
    tree._height = height
    return tree
  }

  /** Number of keys. */
  get size(): number {
    return this._size
  }

  /** Levels including the leaves (1 for a tree that is a single leaf). */
  get height(): number {
    return this._height
  }

  /** Walks from the root to the leaf whose interval holds key, recording the path; returns the leaf. */
  private descend(key: string): Leaf {
    let node = this.root
    let d = 0
    while (!(node instanceof Leaf)) {
      const i = childIndex(node.seps, key)
      this.pathNode[d] = node
      this.pathIdx[d] = i
      d++
      node = node.children[i]!
    }
    return node
  }

  private findLeaf(key: string): Leaf {
    let node = this.root
    while (!(node instanceof Leaf)) node = node.children[childIndex(node.seps, key)]!
    return node
  }

  /** Adds key with fingerprint fp (copied), or replaces the fingerprint of a present key. True when the key is new. */
  insert(key: string, fp: Uint8Array): boolean {
    checkFp(fp)
    const leaf = this.descend(key)
    const depth = this._height - 1
    const keys = leaf.keys
    const n = keys.length
    const pos = lowerBound(keys, key)
    const o = pos * W
    if (pos < n && keys[pos] === key) {
      const delta = this.tmp
      for (let j = 0; j < W; j++) delta[j] = leaf.w[o + j]!
      leaf.fps.set(fp, pos * FP)
      xorInto(delta, 0, leaf.w, o)
      for (let d = 0; d < depth; d++) xorInto(this.pathNode[d]!.w, this.pathIdx[d]! * W, delta, 0)
      xorInto(this.total, 0, delta, 0)
      return false
    }
    keys.splice(pos, 0, key)
    if (pos < n) leaf.fps.copyWithin((pos + 1) * FP, pos * FP, n * FP)
    leaf.fps.set(fp, pos * FP)
    for (let d = 0; d < depth; d++) {
      const p = this.pathNode[d]!
      const i = this.pathIdx[d]!
      p.counts[i]!++
      xorInto(p.w, i * W, leaf.w, o)
    }
    xorInto(this.total, 0, leaf.w, o)
    this._size++
    if (n + 1 > this.leafCap) this.split(leaf, depth)
    return true
  }

  /** Splits the overflowing leaf at `depth` (the last descent's path) and every ancestor that overflows in turn. */
  private split(leaf: Leaf, depth: number): void {
    const rAgg = this.tmp
    let n = leaf.keys.length
    let m = n >> 1
    const rl = new Leaf(leaf.keys.splice(m), this.leafCap)
    rl.fps.set(leaf.fps.subarray(m * FP, n * FP))
    rl.next = leaf.next
    leaf.next = rl
    xorSlots(rAgg.fill(0), rl.w, 0, n - m)
    let left: Node = leaf
    let right: Node = rl
    let sep = rl.keys[0]!
    let rCount = n - m
    for (let d = depth - 1; d >= 0; d--) {
      const p = this.pathNode[d]!
      const i = this.pathIdx[d]!
      p.counts[i]! -= rCount
      xorInto(p.w, i * W, rAgg, 0)
      p.children.splice(i + 1, 0, right)
      p.seps.splice(i + 1, 0, sep)
      p.counts.splice(i + 1, 0, rCount)
      n = p.children.length
      p.w.copyWithin((i + 2) * W, (i + 1) * W, (n - 1) * W)
      p.w.set(rAgg, (i + 1) * W)
      if (n <= this.innerCap) return
      m = n >> 1
      const ri = new Inner(p.children.splice(m), p.seps.splice(m), p.counts.splice(m), this.innerCap)
      sep = ri.seps[0]!
      ri.seps[0] = ""
      ri.w.set(p.w.subarray(m * W, n * W))
      rCount = 0
      for (const c of ri.counts) rCount += c
      xorSlots(rAgg.fill(0), ri.w, 0, n - m)
      left = p
      right = ri
    }
    // The root split: grow a level.
    const root = new Inner([left, right], ["", sep], [this._size - rCount, rCount], this.innerCap)
    xorInto(root.w, 0, this.total, 0)
    xorInto(root.w, 0, rAgg, 0)
    root.w.set(rAgg, W)
    this.root = root
    this._height++
  }

  /** Removes key; returns its fingerprint (a fresh copy), or undefined when absent. */
  delete(key: string): Uint8Array | undefined {
    const leaf = this.descend(key)
    const depth = this._height - 1
    const keys = leaf.keys
    const n = keys.length
    const pos = lowerBound(keys, key)
    if (pos === n || keys[pos] !== key) return undefined
    const out = leaf.fps.slice(pos * FP, pos * FP + FP)
    const o = pos * W
    for (let d = 0; d < depth; d++) {
      const p = this.pathNode[d]!
      const i = this.pathIdx[d]!
      p.counts[i]!--
      xorInto(p.w, i * W, leaf.w, o)
    }
    xorInto(this.total, 0, leaf.w, o)
    keys.splice(pos, 1)
    leaf.fps.copyWithin(pos * FP, (pos + 1) * FP, n * FP)
    this._size--
    if (n - 1 < this.leafMin && depth > 0) this.rebalance(depth)
    return out
  }

  /**
   * Fixes the underfull node at `depth` (on the last descent's path) by merging it with a sibling when both fit in one
   * node, else by sharing entries evenly; a merge can leave the parent underfull, and so on up. The root shrinks a
   * level when it is left with a single child.
   */
  private rebalance(depth: number): void {
    for (let d = depth - 1; d >= 0; d--) {
      const p = this.pathNode[d]!
      const i = this.pathIdx[d]!
      const li = i > 0 ? i - 1 : 0
      const l = p.children[li]!
      const r = p.children[li + 1]!
      let merged: boolean
      if (l instanceof Leaf) {
        merged = l.keys.length + (r as Leaf).keys.length <= this.leafCap
        if (merged) this.mergeLeaves(p, li, l, r as Leaf)
        else this.shareLeaves(p, li, l, r as Leaf)
      } else {
        merged = l.children.length + (r as Inner).children.length <= this.innerCap
        if (merged) this.mergeInners(p, li, l, r as Inner)
        else this.shareInners(p, li, l, r as Inner)
      }
      if (!merged) return
      if (d === 0) {
        if (p.children.length === 1) {
          this.root = p.children[0]!
          this._height--
        }
        return
      }
      if (p.children.length >= this.innerMin) return
    }
  }

  /** Drops entry j of p, whose contents have been folded into entry j − 1. */
  private removeEntry(p: Inner, j: number): void {
    const n = p.children.length
    p.counts[j - 1]! += p.counts[j]!
    xorInto(p.w, (j - 1) * W, p.w, j * W)
    p.children.splice(j, 1)
    p.seps.splice(j, 1)
    p.counts.splice(j, 1)
    p.w.copyWithin(j * W, (j + 1) * W, n * W)
  }

  private mergeLeaves(p: Inner, li: number, l: Leaf, r: Leaf): void {
    l.fps.set(r.fps.subarray(0, r.keys.length * FP), l.keys.length * FP)
    for (const k of r.keys) l.keys.push(k)
    l.next = r.next
    this.removeEntry(p, li + 1)
  }

  private mergeInners(p: Inner, li: number, l: Inner, r: Inner): void {
    l.w.set(r.w.subarray(0, r.children.length * W), l.children.length * W)
    r.seps[0] = p.seps[li + 1]!
    l.children = l.children.concat(r.children)
    l.seps = l.seps.concat(r.seps)
    l.counts = l.counts.concat(r.counts)
    this.removeEntry(p, li + 1)
  }

  /** Moves entries between adjacent leaves so they hold ⌊t/2⌋ and ⌈t/2⌉; fixes the parent's counts, XORs, separator. */
  private shareLeaves(p: Inner, li: number, l: Leaf, r: Leaf): void {
    const nl = l.keys.length
    const nr = r.keys.length
    const target = (nl + nr) >> 1
    const moved = this.tmp.fill(0)
    let k: number
    if (nl < target) {
      k = target - nl
      l.fps.set(r.fps.subarray(0, k * FP), nl * FP)
      r.fps.copyWithin(0, k * FP, nr * FP)
      for (const key of r.keys.splice(0, k)) l.keys.push(key)
      xorSlots(moved, l.w, nl, target)
    } else {
      k = target - nl // ≤ 0: keys flow right
      const from = target
      r.fps.copyWithin((nl - from) * FP, 0, nr * FP)
      r.fps.set(l.fps.subarray(from * FP, nl * FP), 0)
      r.keys = l.keys.splice(from).concat(r.keys)
      xorSlots(moved, r.w, 0, nl - from)
    }
    p.counts[li]! += k
    p.counts[li + 1]! -= k
    xorInto(p.w, li * W, moved, 0)
    xorInto(p.w, (li + 1) * W, moved, 0)
    p.seps[li + 1] = r.keys[0]!
  }

  /** As shareLeaves for internal siblings: children rotate through the parent's separator. */
  private shareInners(p: Inner, li: number, l: Inner, r: Inner): void {
    const nl = l.children.length
    const nr = r.children.length
    const target = (nl + nr) >> 1
    const moved = this.tmp.fill(0)
    let c = 0
    if (nl < target) {
      const k = target - nl
      l.w.set(r.w.subarray(0, k * W), nl * W)
      r.w.copyWithin(0, k * W, nr * W)
      const seps = r.seps.splice(0, k)
      seps[0] = p.seps[li + 1]!
      p.seps[li + 1] = r.seps[0]!
      r.seps[0] = ""
      for (const s of seps) l.seps.push(s)
      for (const ch of r.children.splice(0, k)) l.children.push(ch)
      for (const x of r.counts.splice(0, k)) {
        l.counts.push(x)
        c += x
      }
      xorSlots(moved, l.w, nl, target)
    } else {
      const k = nl - target
      r.w.copyWithin(k * W, 0, nr * W)
      r.w.set(l.w.subarray(target * W, nl * W), 0)
      const seps = l.seps.splice(target)
      r.seps[0] = p.seps[li + 1]!
      p.seps[li + 1] = seps[0]!
      seps[0] = ""
      r.seps = seps.concat(r.seps)
      r.children = l.children.splice(target).concat(r.children)
      const counts = l.counts.splice(target)
      for (const x of counts) c -= x
      r.counts = counts.concat(r.counts)
      xorSlots(moved, r.w, 0, k)
    }
    p.counts[li]! += c
    p.counts[li + 1]! -= c
    xorInto(p.w, li * W, moved, 0)
    xorInto(p.w, (li + 1) * W, moved, 0)
  }

  /** The fingerprint of key (a fresh copy), or undefined. */
  get(key: string): Uint8Array | undefined {
    const leaf = this.findLeaf(key)
    const pos = lowerBound(leaf.keys, key)
    if (pos === leaf.keys.length || leaf.keys[pos] !== key) return undefined
    return leaf.fps.slice(pos * FP, pos * FP + FP)
  }

  has(key: string): boolean {
    const leaf = this.findLeaf(key)
    const pos = lowerBound(leaf.keys, key)
    return pos < leaf.keys.length && leaf.keys[pos] === key
  }

  /** Number of keys strictly less than key. */
  rank(key: string): number {
    let node = this.root
    let acc = 0
    while (!(node instanceof Leaf)) {
      const i = childIndex(node.seps, key)
      for (let j = 0; j < i; j++) acc += node.counts[j]!
      node = node.children[i]!
    }
    return acc + lowerBound(node.keys, key)
  }

  private checkIndex(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this._size) throw new RangeError(`index ${i} out of [0, ${this._size})`)
  }

  private checkBounds(a: number, b: number): void {
    if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || a > b || b > this._size) {
      throw new RangeError(`range [${a}, ${b}) out of [0, ${this._size}]`)
    }
  }

  /** The leaf holding rank i (0 ≤ i < size); `this.offset` receives i's slot in it. */
  private locate(i: number): Leaf {
    let node = this.root
    while (!(node instanceof Leaf)) {
      const counts = node.counts
      let j = 0
      while (i >= counts[j]!) i -= counts[j++]!
      node = node.children[j]!
    }
    this.offset = i
    return node
  }

  /** The key of rank i, 0 ≤ i < size. */
  select(i: number): string {
    this.checkIndex(i)
    return this.locate(i).keys[this.offset]!
  }

  /** The fingerprint of the key of rank i (a fresh copy), 0 ≤ i < size. */
  fpAt(i: number): Uint8Array {
    this.checkIndex(i)
    const leaf = this.locate(i)
    return leaf.fps.slice(this.offset * FP, this.offset * FP + FP)
  }

  /** XORs the fingerprints of ranks [0, i) into acc (0 ≤ i ≤ size, unchecked). */
  private prefixInto(i: number, acc: Uint32Array): void {
    if (i === 0) return
    if (i === this._size) {
      xorInto(acc, 0, this.total, 0)
      return
    }
    let node = this.root
    // The current node's aggregate lives at agg[ao, ao + 8).
    let agg: Uint32Array = this.total
    let ao = 0
    let r = i // 0 < r < keys under node
    for (;;) {
      if (node instanceof Leaf) {
        const n = node.keys.length
        if (r * 2 <= n) xorSlots(acc, node.w, 0, r)
        else {
          xorInto(acc, 0, agg, ao)
          xorSlots(acc, node.w, r, n)
        }
        return
      }
      const counts = node.counts
      const n = counts.length
      let j = 0
      while (r >= counts[j]!) r -= counts[j++]!
      if (j * 2 <= n) xorSlots(acc, node.w, 0, j)
      else {
        xorInto(acc, 0, agg, ao)
        xorSlots(acc, node.w, j, n)
      }
      if (r === 0) return
      agg = node.w
      ao = j * W
      node = node.children[j]!
    }
  }

  /** Writes the XOR of the fingerprints of the first i keys (0 ≤ i ≤ size) into out[0, 32). */
  xorPrefix(i: number, out: Uint8Array): void {
    this.checkBounds(0, i)
    if (out.length < FP) throw new RangeError(`out must hold ${FP} bytes`)
    const acc = this.acc.fill(0)
    this.prefixInto(i, acc)
    out.set(this.acc8)
  }

  /** The XOR of the fingerprints of ranks [a, b), written into out (a new 32-byte array by default), which is returned. */
  xorRange(a: number, b: number, out: Uint8Array = new Uint8Array(FP)): Uint8Array {
    this.checkBounds(a, b)
    if (out.length < FP) throw new RangeError(`out must hold ${FP} bytes`)
    const acc = this.acc.fill(0)
    if (b - a > SCAN_RANGE) {
      this.prefixInto(a, acc)
      this.prefixInto(b, acc)
    } else if (a < b) {
      // A short range: one descent and its slots, instead of two prefix descents (a reconciliation round checks
      // thousands of ranges of a few entries).
      let leaf: Leaf | undefined = this.locate(a)
      let k = this.offset
      let left = b - a
      while (left > 0 && leaf !== undefined) {
        const end = Math.min(leaf.keys.length, k + left)
        xorSlots(acc, leaf.w, k, end)
        left -= end - k
        k = 0
        leaf = leaf.next
      }
    }
    out.set(this.acc8)
    return out
  }

  /** The keys of ranks [a, b), ascending. O(log n + (b − a)). */
  keysInRange(a: number, b: number): Array<string> {
    this.checkBounds(a, b)
    const out: Array<string> = []
    if (a === b) return out
    let leaf: Leaf | undefined = this.locate(a)
    let k = this.offset
    let left = b - a
    while (left > 0 && leaf !== undefined) {
      const keys: Array<string> = leaf.keys
      const end = Math.min(keys.length, k + left)
      for (let j = k; j < end; j++) out.push(keys[j]!)
      left -= end - k
      k = 0
      leaf = leaf.next
    }
    return out
  }

  /** All entries in ascending key order (fingerprints are fresh copies). Do not mutate the tree while iterating. */
  *entries(): IterableIterator<[string, Uint8Array]> {
    let node = this.root
    while (!(node instanceof Leaf)) node = node.children[0]!
    for (let leaf: Leaf | undefined = node; leaf !== undefined; leaf = leaf.next) {
      for (let j = 0; j < leaf.keys.length; j++) yield [leaf.keys[j]!, leaf.fps.slice(j * FP, j * FP + FP)]
    }
  }

  /** Verifies every structural invariant in O(n); throws an Error naming the first violation. For tests. */
  checkInvariants(): void {
    const fail = (msg: string): never => {
      throw new Error(`FingerprintTree invariant: ${msg}`)
    }
    const leaves: Array<Leaf> = []
    const agg = new Uint32Array(W)
    // Returns [count, min, max]; XORs the subtree's fingerprints into `into`.
    const visit = (
      node: Node,
      depth: number,
      isRoot: boolean,
      into: Uint32Array,
      io: number
    ): [number, string | undefined, string | undefined] => {
      if (node instanceof Leaf) {
        if (depth !== this._height - 1) fail(`leaf at depth ${depth}, height ${this._height}`)
        const n = node.keys.length
        if (n > this.leafCap) fail(`leaf overfull (${n})`)
        if (!isRoot && n < this.leafMin) fail(`leaf underfull (${n})`)
        for (let j = 1; j < n; j++) if (!(node.keys[j - 1]! < node.keys[j]!)) fail("leaf keys not ascending")
        for (let j = 0; j < n; j++) xorInto(into, io, node.w, j * W)
        leaves.push(node)
        return [n, node.keys[0], node.keys[n - 1]]
      }
      const n = node.children.length
      if (node.seps.length !== n || node.counts.length !== n) fail("inner arrays differ in length")
      if (n > this.innerCap) fail(`inner overfull (${n})`)
      if (isRoot ? n < 2 : n < this.innerMin) fail(`inner underfull (${n})`)
      if (node.seps[0] !== "") fail("seps[0] is not empty")
      let count = 0
      let min: string | undefined
      let prevMax: string | undefined
      for (let j = 0; j < n; j++) {
        const a = new Uint32Array(W)
        const [c, lo, hi] = visit(node.children[j]!, depth + 1, false, a, 0)
        if (c !== node.counts[j]) fail(`count ${node.counts[j]} ≠ ${c}`)
        for (let x = 0; x < W; x++) if (a[x] !== node.w[j * W + x]) fail("aggregate XOR mismatch")
        xorInto(into, io, a, 0)
        if (j > 0) {
          const s = node.seps[j]!
          if (!(prevMax! < s) || !(s <= lo!)) fail("separator out of place")
        } else min = lo
        prevMax = hi
        count += c
      }
      return [count, min, prevMax]
    }
    const [count] = visit(this.root, 0, true, agg, 0)
    if (count !== this._size) fail(`size ${this._size} ≠ ${count}`)
    for (let x = 0; x < W; x++) if (agg[x] !== this.total[x]) fail("total XOR mismatch")
    for (let j = 0; j < leaves.length; j++) {
      if (leaves[j]!.next !== leaves[j + 1]) fail("leaf chain broken")
    }
    for (let j = 1; j < leaves.length; j++) {
      const a = leaves[j - 1]!.keys
      if (!(a[a.length - 1]! < leaves[j]!.keys[0]!)) fail("leaves out of order")
    }
  }
}
