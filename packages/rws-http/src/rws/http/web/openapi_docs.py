"""The built-in API docs page: one self-contained HTML page, no CDN.

It fetches the OpenAPI document, lists every operation by tag with its parameters, request
body and responses, and has a form per operation that sends the request with ``fetch`` and
shows the answer. Everything is rendered through ``textContent`` (descriptions are never
parsed as HTML), and the page is served with a Content-Security-Policy allowing only its
own inline script and style (by hash) and requests to its own origin plus the document's
absolute server URLs. Cookies parameters cannot be set by ``fetch``: the browser's own are
sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence

from .responses import HTMLResponse, Response

__all__ = ["DocsPage"]


class DocsPage:
    """The page for one document; ``connect_sources`` are the extra origins it may call."""

    def __init__(self, title: str, connect_sources: Sequence[str] = ()) -> None:
        self.title = title
        self.connect_sources = list(connect_sources)

    def response(self, spec_url: str) -> Response:
        """The page, loading the document from ``spec_url``."""
        data = json.dumps(spec_url).replace("<", "\\u003c").replace(">", "\\u003e")
        data = data.replace("&", "\\u0026")
        title = self.title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        html = _PAGE.format(title=title, style=_STYLE, script=_SCRIPT, spec_url=data)
        connect = " ".join(["'self'", *self.connect_sources])
        policy = (
            f"default-src 'none'; script-src '{_hash(_SCRIPT)}'; style-src '{_hash(_STYLE)}'; "
            f"connect-src {connect}; img-src 'self' data:; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'self'"
        )
        headers = {
            "content-security-policy": policy,
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
        }
        return HTMLResponse(html, headers=headers)


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header><h1 id="title">{title}</h1><p id="info"></p></header>
<main id="main"><p>Loading the API description…</p></main>
<script type="application/json" id="spec-url">{spec_url}</script>
<script>{script}</script>
</body>
</html>
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 70rem; padding: 1rem;
  color: #1d232a; }
code, pre, textarea { font-family: ui-monospace, monospace; font-size: 0.85rem; }
pre { background: #f4f6f8; padding: 0.5rem; overflow: auto; max-height: 20rem; margin: 0; }
details.op { border: 1px solid #cfd6dd; border-radius: 4px; margin: 0.4rem 0; }
details.op > summary { cursor: pointer; padding: 0.5rem; display: flex; gap: 0.75rem;
  align-items: baseline; }
details.op > div { padding: 0 0.75rem 0.75rem; }
.method { font-weight: bold; min-width: 4.5rem; text-transform: uppercase; }
.get .method { color: #0b6bcb; } .post .method { color: #1a7f37; }
.put .method, .patch .method { color: #9a6700; } .delete .method { color: #cf222e; }
.deprecated code { text-decoration: line-through; }
.muted { color: #57606a; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 0.25rem 0.5rem;
  border-bottom: 1px solid #e4e8ec; }
textarea { width: 100%; box-sizing: border-box; }
label { display: block; margin: 0.25rem 0; }
button { margin: 0.5rem 0; padding: 0.3rem 1rem; }
h2 { margin-top: 1.5rem; }
"""

_SCRIPT = """
"use strict";
const make = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value; else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
};
const specUrl = JSON.parse(document.getElementById("spec-url").textContent);
const main = document.getElementById("main");
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
let spec = {};
let base = "";

function resolve(schema) {
  for (let hops = 0; schema && schema.$ref && hops < 32; hops++) {
    const name = decodeURIComponent(schema.$ref.split("/").pop());
    schema = ((spec.components || {}).schemas || {})[name];
  }
  return schema || {};
}

const show = (schema) => make("pre", {text: JSON.stringify(schema, null, 2)});

function example(schema, depth = 0) {
  schema = resolve(schema);
  if (depth > 6) return null;
  if ("default" in schema) return schema.default;
  if (schema.examples && schema.examples.length) return schema.examples[0];
  if (schema.enum) return schema.enum[0];
  if (schema.anyOf) return example(schema.anyOf[0], depth + 1);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (type === "object") {
    const out = {};
    for (const [key, value] of Object.entries(schema.properties || {})) {
      if ((schema.required || []).includes(key)) out[key] = example(value, depth + 1);
    }
    return out;
  }
  if (type === "array") return (schema.prefixItems || []).map((s) => example(s, depth + 1));
  if (type === "integer" || type === "number") return schema.minimum ?? 0;
  if (type === "boolean") return false;
  if (type === "string") {
    if (schema.format === "uuid") return crypto.randomUUID();
    if (schema.format === "date-time") return new Date().toISOString();
    if (schema.format === "date") return new Date().toISOString().slice(0, 10);
    return "string";
  }
  return null;
}

async function send(method, path, parameters, body, output) {
  let url = base + path;
  const query = new URLSearchParams();
  const headers = new Headers();
  for (const [parameter, input] of parameters) {
    const value = input.value;
    if (value === "") continue;
    const many = resolve(parameter.schema).type === "array";
    const values = many ? value.split(",").map((v) => v.trim()) : [value];
    const slot = "{" + parameter.name + "}";
    if (parameter.in === "path") url = url.replace(slot, encodeURIComponent(value));
    else if (parameter.in === "query") values.forEach((v) => query.append(parameter.name, v));
    else if (parameter.in === "header") headers.append(parameter.name, value);
  }
  if (query.toString()) url += "?" + query.toString();
  const init = {method: method.toUpperCase(), headers};
  if (body) {
    if (body.json) {
      if (body.json.value.trim()) {
        headers.set("content-type", "application/json");
        init.body = body.json.value;
      }
    } else {
      const data = new FormData();
      for (const [name, input, isFile] of body.fields) {
        if (isFile) for (const file of input.files) data.append(name, file);
        else if (input.value !== "") data.append(name, input.value);
      }
      init.body = body.media === "multipart/form-data" ? data : new URLSearchParams(data);
    }
  }
  output.textContent = "…";
  try {
    const response = await fetch(url, init);
    let text = await response.text();
    try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (error) { /* not JSON */ }
    const head = [...response.headers].map(([k, v]) => k + ": " + v).join("\\n");
    const status = response.status + " " + response.statusText;
    output.textContent = status + "\\n" + head + "\\n\\n" + text;
  } catch (error) {
    output.textContent = String(error);
  }
}

function operation(path, method, op) {
  const details = make("details", {class: "op " + method + (op.deprecated ? " deprecated" : "")});
  details.append(make("summary", {}, make("span", {class: "method", text: method}),
    make("code", {text: path}), make("span", {class: "muted", text: op.summary || ""})));
  const body = make("div");
  details.append(body);
  if (op.description) body.append(make("p", {text: op.description}));
  if (op.deprecated) body.append(make("p", {class: "muted", text: "Deprecated."}));
  const parameters = [];
  if ((op.parameters || []).length) {
    const table = make("table", {}, make("tr", {}, ...["Name", "In", "Schema", "Value"]
      .map((text) => make("th", {text}))));
    for (const parameter of op.parameters) {
      const many = resolve(parameter.schema).type === "array";
      const hint = parameter.in === "cookie" ? "sent by the browser" : "";
      const input = make("input", {"aria-label": parameter.name,
        placeholder: many ? "comma, separated" : hint});
      if (parameter.in === "cookie") input.disabled = true;
      parameters.push([parameter, input]);
      table.append(make("tr", {},
        make("td", {}, make("code", {text: parameter.name}), parameter.required ? " *" : "",
          parameter.description
            ? make("div", {class: "muted", text: parameter.description}) : null),
        make("td", {text: parameter.in}), make("td", {}, show(parameter.schema || {})),
        make("td", {}, input)));
    }
    body.append(make("h4", {text: "Parameters"}), table);
  }
  let requestBody = null;
  const content = (op.requestBody || {}).content || {};
  if (content["application/json"]) {
    const schema = content["application/json"].schema || {};
    const json = make("textarea", {rows: "8", "aria-label": "request body"});
    json.value = JSON.stringify(example(schema), null, 2);
    requestBody = {json};
    body.append(make("h4", {text: "Request body (application/json)"}), show(schema), json);
  } else {
    const media = ["multipart/form-data", "application/x-www-form-urlencoded"]
      .find((m) => content[m]);
    if (media) {
      const schema = resolve(content[media].schema);
      requestBody = {media, fields: []};
      body.append(make("h4", {text: "Form (" + media + ")"}));
      for (const [name, property] of Object.entries(schema.properties || {})) {
        const many = property.type === "array";
        const item = many ? (property.items || {}) : property;
        const isFile = item.contentMediaType !== undefined;
        const input = make("input", {type: isFile ? "file" : "text", "aria-label": name});
        if (isFile && many) input.multiple = true;
        requestBody.fields.push([name, input, isFile]);
        body.append(make("label", {}, make("code", {text: name}), " ", input));
      }
    }
  }
  body.append(make("h4", {text: "Responses"}));
  for (const [status, response] of Object.entries(op.responses || {})) {
    const media = Object.keys(response.content || {});
    const schema = media.length ? (response.content[media[0]].schema || null) : null;
    body.append(make("div", {}, make("strong", {text: status + " "}),
      make("span", {text: (response.description || "")
        + (media.length ? " (" + media.join(", ") + ")" : "")}),
      schema ? show(schema) : null));
  }
  const output = make("pre", {class: "output"});
  const button = make("button", {type: "button", text: "Send"});
  button.addEventListener("click", () => send(method, path, parameters, requestBody, output));
  body.append(make("h4", {text: "Try it"}), button, output);
  return details;
}

function render() {
  document.title = spec.info.title;
  document.getElementById("title").textContent = spec.info.title + " " + spec.info.version;
  document.getElementById("info").textContent = spec.info.description || "";
  base = ((spec.servers || [])[0] || {}).url || "";
  base = base.replace(/\\/$/, "");
  main.replaceChildren();
  const groups = new Map();
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
      if (!METHODS.includes(method)) continue;
      for (const tag of (op.tags && op.tags.length ? op.tags : ["default"])) {
        if (!groups.has(tag)) groups.set(tag, []);
        groups.get(tag).push(operation(path, method, op));
      }
    }
  }
  for (const [tag, operations] of groups) main.append(make("h2", {text: tag}), ...operations);
  const schemas = (spec.components || {}).schemas || {};
  if (Object.keys(schemas).length) {
    main.append(make("h2", {text: "Schemas"}));
    for (const [name, schema] of Object.entries(schemas)) {
      main.append(make("details", {class: "op"}, make("summary", {}, make("code", {text: name})),
        make("div", {}, show(schema))));
    }
  }
}

fetch(specUrl).then((response) => {
  if (!response.ok) throw new Error("GET " + specUrl + ": " + response.status);
  return response.json();
}).then((document_) => { spec = document_; render(); }).catch((error) => {
  main.replaceChildren(make("p", {text: "Could not load the API description: " + error}));
});
"""
