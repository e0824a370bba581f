/**
 * The slice of the DOM the page uses, typed here: the project's type check runs without the DOM library (its Node
 * programs would see the browser's globals). `declare const` binds the browser's globals in this module only.
 */
export interface DomEvent {
  readonly key: string
  readonly target: unknown
  preventDefault(): void
}

export interface Elem {
  textContent: string | null
  className: string
  id: string
  hidden: boolean
  title: string
  tabIndex: number
  readonly dataset: Record<string, string | undefined>
  setAttribute(name: string, value: string): void
  getAttribute(name: string): string | null
  removeAttribute(name: string): void
  append(...nodes: ReadonlyArray<Elem | string>): void
  replaceChildren(...nodes: ReadonlyArray<Elem | string>): void
  addEventListener(type: string, listener: (event: DomEvent) => void): void
  querySelector(selectors: string): Elem | null
  focus(): void
  click(): void
  remove(): void
}

export interface Field extends Elem {
  value: string
  checked: boolean
  type: string
  disabled: boolean
  select(): void
}

interface Doc {
  title: string
  readonly body: Elem
  createElement(tag: "input" | "select" | "textarea" | "option" | "button"): Field
  createElement(tag: string): Elem
  createElementNS(namespace: string, tag: string): Elem
  getElementById(id: string): Elem | null
}

declare const document: Doc
declare const sessionStorage: {
  getItem(key: string): string | null
  setItem(key: string, value: string): void
  removeItem(key: string): void
}
declare const location: { readonly hash: string; readonly pathname: string; readonly origin: string }
declare const history: { replaceState(state: null, unused: string, url: string): void }

export const doc = (): Doc => document
export const storage = () => sessionStorage
export const currentLocation = () => location
export const replaceUrl = (url: string) => history.replaceState(null, "", url)

type Child = Elem | string | undefined | false
type Attrs = Record<string, string | number | boolean | ((event: DomEvent) => void) | undefined>

const set = (el: Elem, attrs: Attrs) => {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue
    if (typeof value === "function") el.addEventListener(name.slice(2).toLowerCase(), value)
    else el.setAttribute(name, value === true ? "" : String(value))
  }
}

const kids = (children: ReadonlyArray<Child>) =>
  children.filter((c): c is Elem | string => c !== undefined && c !== false)

/** An element with attributes (`onClick` etc. add listeners) and children. */
export const h = (tag: string, attrs: Attrs = {}, ...children: ReadonlyArray<Child>): Elem => {
  const el = document.createElement(tag)
  set(el, attrs)
  el.append(...kids(children))
  return el
}

/** A form field (input, select, textarea) with attributes. */
export const field = (tag: "input" | "select" | "textarea", attrs: Attrs = {}, ...children: ReadonlyArray<Child>): Field => {
  const el = document.createElement(tag)
  set(el, attrs)
  el.append(...kids(children))
  return el
}

export const option = (value: string, label: string, selected = false): Field => {
  const el = document.createElement("option")
  el.value = value
  el.textContent = label
  if (selected) el.setAttribute("selected", "")
  return el
}

const SVG = "http://www.w3.org/2000/svg"

export const svg = (tag: string, attrs: Record<string, string | number> = {}, ...children: ReadonlyArray<Elem>): Elem => {
  const el = document.createElementNS(SVG, tag)
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value))
  el.append(...children)
  return el
}
