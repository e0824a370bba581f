/**
 * Vitest setup of the serial pass: when `RANGEDOCS_TEST_DONE_DIR` is set, each test file leaves `<name>.done` there
 * once it has finished, so that test/run.sh can start what must not run beside it (the lab and the type check wait
 * for the swarm) without running it in a vitest process of its own.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, expect } from "vitest"

const dir = process.env["RANGEDOCS_TEST_DONE_DIR"]
if (dir !== undefined && dir !== "") {
  afterAll(() => {
    const file = expect.getState().testPath
    if (file !== undefined) fs.writeFileSync(path.join(dir, `${path.basename(file)}.done`), "")
  })
}
