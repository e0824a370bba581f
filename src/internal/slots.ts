/** Concurrent holders per key (a peer) under a per-key and a total cap: admission control for inbound streams. */
export class Slots {
  readonly #perKey = new Map<string, number>()
  #total = 0

  constructor(readonly maxPerKey: number, readonly maxTotal: number) {}

  /** Takes a slot for `key`; false (nothing taken) when either cap is reached. */
  tryTake(key: string): boolean {
    const n = this.#perKey.get(key) ?? 0
    if (n >= this.maxPerKey || this.#total >= this.maxTotal) return false
    this.#perKey.set(key, n + 1)
    this.#total++
    return true
  }

  /** Gives back a slot taken by `tryTake`. */
  release(key: string): void {
    const n = this.#perKey.get(key)
    if (n === undefined) return
    this.#total--
    if (n <= 1) this.#perKey.delete(key)
    else this.#perKey.set(key, n - 1)
  }

  get total(): number {
    return this.#total
  }
}
