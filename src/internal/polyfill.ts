/**
 * Installs `Promise.withResolvers` (ES2024) when missing. libp2p 3 calls it and Node 20 lacks it (STACK.md), so every
 * entry point that can load libp2p imports this module first: `services/Network.ts`, vitest `setupFiles`. This is the
 * one module-level side effect allowed in src/; it only fills a standard gap and never replaces an existing function.
 */
interface Resolvers<T> {
  readonly promise: Promise<T>
  readonly resolve: (value: T | PromiseLike<T>) => void
  readonly reject: (reason?: unknown) => void
}

const promiseConstructor: PromiseConstructor & { readonly withResolvers?: unknown } = Promise

if (typeof promiseConstructor.withResolvers !== "function") {
  Object.defineProperty(Promise, "withResolvers", {
    configurable: true,
    writable: true,
    value: function withResolvers<T>(this: PromiseConstructor): Resolvers<T> {
      let resolve: Resolvers<T>["resolve"] = () => {}
      let reject: Resolvers<T>["reject"] = () => {}
      const promise = new this<T>((res, rej) => {
        resolve = res
        reject = rej
      })
      return { promise, resolve, reject }
    }
  })
}

export {}
