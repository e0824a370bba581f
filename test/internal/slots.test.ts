import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { Slots } from "../../src/internal/slots.js"

describe("Slots", () => {
  it("caps per key and in total; released slots can be taken again", () => {
    const slots = new Slots(2, 3)
    expect([slots.tryTake("a"), slots.tryTake("a"), slots.tryTake("a")]).toEqual([true, true, false])
    expect([slots.tryTake("b"), slots.tryTake("c")]).toEqual([true, false])
    slots.release("a")
    expect(slots.tryTake("c")).toBe(true)
    slots.release("zzz")
    expect(slots.total).toBe(3)
  })

  it("never exceeds either cap under any sequence of takes and releases (property)", () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 8 }),
      fc.array(fc.tuple(fc.boolean(), fc.constantFrom("a", "b", "c")), { maxLength: 200 }),
      (perKey, total, ops) => {
        const slots = new Slots(perKey, total)
        const held = new Map<string, number>()
        for (const [take, key] of ops) {
          if (take) {
            if (slots.tryTake(key)) held.set(key, (held.get(key) ?? 0) + 1)
          } else if ((held.get(key) ?? 0) > 0) {
            slots.release(key)
            held.set(key, held.get(key)! - 1)
          }
          const sum = [...held.values()].reduce((a, b) => a + b, 0)
          expect(slots.total).toBe(sum)
          expect(sum).toBeLessThanOrEqual(total)
          for (const n of held.values()) expect(n).toBeLessThanOrEqual(perKey)
        }
      }
    ))
  })
})
