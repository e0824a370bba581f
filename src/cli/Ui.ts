/**
 * `rangedocs ui [--open]`: the URL of the running node's inspector (issue 18), `http://127.0.0.1:PORT/#token=…` —
 * the token in the fragment, which the browser never sends; the page moves it to sessionStorage and out of the
 * address bar. `--open` hands the URL to the desktop's opener (xdg-open, open, start).
 *
 * The URL carries the node's access token: whoever has it can read and write every document of the node.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { CliError, common, emit, errLine, resolveDataDir } from "./Common.js"

const open = Options.boolean("open").pipe(Options.withDescription("open the inspector in the default browser"))

/** The program that opens a URL on this platform, with its arguments. */
export const opener = (platform: NodeJS.Platform, url: string): readonly [string, ReadonlyArray<string>] =>
  platform === "darwin"
    ? ["open", [url]]
    : platform === "win32"
    ? ["cmd", ["/c", "start", "", url]]
    : ["xdg-open", [url]]

const openInBrowser = (url: string) =>
  Effect.async<void, CliError>((resume) => {
    void import("node:child_process").then(({ spawn }) => {
      const [command, args] = opener(process.platform, url)
      const child = spawn(command, args, { detached: true, stdio: "ignore" })
      child.once("error", (error) =>
        resume(Effect.fail(new CliError({ message: `could not open a browser (${command}: ${error.message}); open the URL above` }))))
      child.once("spawn", () => {
        child.unref()
        resume(Effect.void)
      })
    })
  })

export const uiCommand = Command.make("ui", { ...common, open }, (options) =>
  Effect.gen(function*() {
    const dir = yield* resolveDataDir(options)
    const [{ readConnection }, { inspectorUrl }] = yield* Effect.promise(() =>
      Promise.all([import("../services/DocsRpcClient.js"), import("../services/Inspector.js")])
    )
    const connection = yield* Effect.mapError(readConnection(dir), (e) => new CliError({ message: e.reason }))
    const url = inspectorUrl(connection.url, Redacted.value(connection.token))
    yield* emit(options, { url }, () => url)
    if (options.open) {
      yield* openInBrowser(url)
      yield* errLine("opened the inspector in the default browser")
    }
  })).pipe(Command.withDescription("the URL of the node's web inspector (with its access token); --open opens it"))
