/**
 * The NAT lab for tests: builds the namespaces of `natlab.sh` under a prefix of its own, starts lab nodes
 * (`agent.ts`) inside them, and tears everything down. `skipReason()` says, in one line, why the lab cannot run here
 * (not root, no network namespaces); tests then skip.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as readline from "node:readline"
import { fileURLToPath } from "node:url"
import type { AgentOptions } from "./agent.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, "../..")
const script = path.join(here, "natlab.sh")

/** Why the lab cannot run on this machine, or undefined when it can. */
export const skipReason = (): string | undefined => {
  if (process.platform !== "linux") return "NAT lab skipped: needs Linux network namespaces"
  if (process.getuid?.() !== 0) return "NAT lab skipped: needs root (network namespaces, nftables)"
  const probe = `rdprobe${process.pid}`
  const made = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8" })
  if (made.error !== undefined || made.status !== 0) {
    return `NAT lab skipped: cannot create a network namespace (${(made.error?.message ?? made.stderr).trim()})`
  }
  spawnSync("ip", ["netns", "del", probe])
  return undefined
}

export const labPrefix = (): string => `rd${process.pid % 100000}`

/** Builds the lab (installing nftables when missing); throws with natlab's output when it fails. */
export const up = (prefix: string): void => {
  const r = spawnSync("bash", [script, "up", prefix], { encoding: "utf8", timeout: 120_000 })
  if (r.status !== 0) throw new Error(`natlab up failed: ${r.stdout}${r.stderr}`)
}

export const down = (prefix: string): void => {
  spawnSync("bash", [script, "down", prefix], { encoding: "utf8", timeout: 30_000 })
}

export interface Agent {
  readonly name: string
  readonly nodeId: string
  readonly peerId: string
  /** Sends a command; resolves with its `ok` value, rejects with its error or after `timeoutMs`. */
  readonly call: (cmd: string, args?: Record<string, unknown>, timeoutMs?: number) => Promise<unknown>
  /** What the node logged so far. */
  readonly log: () => string
  readonly kill: () => void
}

/** Starts a lab node in namespace `ns`; resolves once it is ready. */
export const startAgent = (ns: string, name: string, options: AgentOptions, startMs = 120_000): Promise<Agent> =>
  new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(
      "ip",
      ["netns", "exec", ns, process.execPath, "--import", "tsx", path.join(here, "agent.ts"), JSON.stringify(options)],
      { cwd: root, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, NODE_OPTIONS: "" } }
    )
    let stderr = ""
    // RANGEDOCS_LAB_LOG_DIR keeps every node's whole log (name.log) for a run that is being debugged.
    const logDir = process.env.RANGEDOCS_LAB_LOG_DIR
    const logFile = logDir === undefined ? undefined : fs.openSync(path.join(logDir, `${name}.log`), "a")
    child.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-200_000)
      if (logFile !== undefined) fs.writeSync(logFile, d)
    })
    const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
    let nextId = 1
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${name} did not start within ${startMs} ms:\n${stderr.slice(-4000)}`))
    }, startMs)
    child.on("exit", (code) => {
      clearTimeout(timer)
      for (const p of pending.values()) p.reject(new Error(`${name} exited (${code})`))
      pending.clear()
      reject(new Error(`${name} exited (${code}) before it was ready:\n${stderr.slice(-4000)}`))
    })
    const kill = () => {
      if (child.exitCode === null) child.kill("SIGKILL")
    }
    readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      let message: { ready?: { nodeId: string; peerId: string }; id?: number; ok?: unknown; error?: string }
      try {
        message = JSON.parse(line)
      } catch {
        return
      }
      if (message.ready !== undefined) {
        clearTimeout(timer)
        resolve({
          name,
          nodeId: message.ready.nodeId,
          peerId: message.ready.peerId,
          call: (cmd: string, args: Record<string, unknown> = {}, timeoutMs = 20_000) =>
            new Promise<unknown>((res, rej) => {
              const id = nextId++
              const t = setTimeout(() => {
                pending.delete(id)
                rej(new Error(`${name} ${cmd}: no answer within ${timeoutMs} ms`))
              }, timeoutMs)
              pending.set(id, {
                resolve: (v) => {
                  clearTimeout(t)
                  res(v)
                },
                reject: (e) => {
                  clearTimeout(t)
                  rej(e)
                }
              })
              child.stdin?.write(`${JSON.stringify({ id, cmd, ...args })}\n`)
            }),
          log: () => stderr,
          kill
        })
        return
      }
      if (message.id === undefined) return
      const p = pending.get(message.id)
      if (p === undefined) return
      pending.delete(message.id)
      if (message.error !== undefined) p.reject(new Error(`${name}: ${message.error}`))
      else p.resolve(message.ok)
    })
  })

/** Polls `check` every 200 ms until it returns a value other than undefined, or fails after `withinMs`. */
export const until = async <A>(what: string, check: () => Promise<A | undefined>, withinMs = 30_000): Promise<A> => {
  const deadline = Date.now() + withinMs
  let last: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined) return value
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms: ${what}${last === undefined ? "" : ` (${String(last)})`}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}
