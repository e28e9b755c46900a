"""The page of ``niwt serve``: its HTML, its style sheet (the report's, and a few rules of its own)
and its script (plain JavaScript, no library), all written here and served by the server itself:
no CDN, no font or script from elsewhere, no telemetry. The script builds every element from the
server's JSON with ``textContent`` (never ``innerHTML``), so a class name or a file name can never
become markup; every control has a visible ``<label>``.
"""

from __future__ import annotations

import html

from niwt.report.html import STYLE

__all__ = ["SCRIPT_PATH", "STYLE_PATH", "page_html", "PAGE_STYLE", "SCRIPT"]

SCRIPT_PATH = "/static/serve.js"
STYLE_PATH = "/static/serve.css"


def page_html(token: str, title: str) -> str:
    """The page's HTML; ``token`` goes into a meta tag for the script's requests (it is only ever
    served to a holder of the token)."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="niwt-token" content="{html.escape(token, quote=True)}">
<meta name="referrer" content="no-referrer">
<title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{STYLE_PATH}">
<script src="{SCRIPT_PATH}" defer></script>
</head><body>
<header>
<h1>{html.escape(title)}</h1>
<p class="note" id="run-line">Reading the run…</p>
<p class="note" id="saved-line" role="status"></p>
<p class="note"><a id="report-link" href="/report" target="_blank" rel="noopener">The run's report</a>
<span id="report-about"></span></p>
</header>
<main class="layout">
<section id="images-section" aria-labelledby="images-title">
<h2 id="images-title">What the network says, and why</h2>
<div id="drop" class="drop">
<label for="files">Images (PNG or JPEG, any size)</label>
<input type="file" id="files" accept="image/png,image/jpeg" multiple>
<p class="note">Choose images or drop them here. For each: the image as the network sees it, the classes it
gives it (<span class="badge seen">seen</span> trained on its images, <span class="badge unseen">unseen</span>
learned from a description, <span class="badge taught">taught</span> taught since), the Grad-CAM map of the
first (click a class for its map), the words behind it and its most important neurons.</p>
<label for="top-k">Classes listed per image</label>
<input type="number" id="top-k" min="1" max="20" value="5">
</div>
<p id="images-status" class="note" role="status"></p>
<div id="cards" class="results"></div>
</section>
<aside id="change-section">
<section aria-labelledby="teach-title">
<h2 id="teach-title">Teach a class</h2>
<form id="teach-form" class="change" autocomplete="off">
<label for="class-name">Class name</label>
<input type="text" id="class-name" name="name" required maxlength="100">
<div id="knowledge-inputs"></div>
<button type="submit" id="teach-button">Teach</button>
</form>
<p id="teach-status" class="status" role="status" aria-live="polite"></p>
</section>
<section aria-labelledby="forget-title">
<h2 id="forget-title">Forget a class</h2>
<form id="forget-form" class="change">
<label for="forget-class">Class to forget</label>
<select id="forget-class" name="name"></select>
<button type="submit" id="forget-button">Forget</button>
</form>
<p id="forget-status" class="status" role="status" aria-live="polite"></p>
</section>
</aside>
<section id="classes-section" aria-labelledby="classes-title">
<h2 id="classes-title">The run's classes</h2>
<p class="note" id="classes-note"></p>
<div class="table-wrap"><table id="classes"><thead><tr><th scope="col">class</th><th scope="col">kind</th>
<th scope="col">given (description or attributes)</th></tr></thead><tbody></tbody></table></div>
</section>
</main>
</body></html>
"""


PAGE_STYLE = STYLE + """
header h1 { margin-top: 0; }
header p { margin: 2px 0; overflow-wrap: anywhere; }
.layout { display: grid; grid-template-columns: minmax(0, 1fr) 380px; gap: 8px 28px; align-items: start; }
#classes-section { grid-column: 1 / -1; }
@media (max-width: 900px) { .layout { grid-template-columns: minmax(0, 1fr); } }
@media (max-width: 520px) { body { margin: 8px auto; padding: 0 10px; } h1 { font-size: 1.3em; } }
label { font-weight: 600; display: block; margin: 10px 0 4px; }
input[type=text], input[type=number], textarea, select { font: inherit; padding: 6px; box-sizing: border-box;
  border: 1px solid #8c959f; border-radius: 6px; width: 100%; max-width: 100%; }
#top-k { width: 6em; }
textarea { min-height: 6em; resize: vertical; }
button { font: inherit; padding: 6px 14px; margin-top: 10px; border: 1px solid #1f883d; border-radius: 6px;
  background: #1f883d; color: #fff; cursor: pointer; }
button:disabled { opacity: 0.6; cursor: progress; }
#forget-button { background: #fff; color: #cf222e; border-color: #cf222e; }
.drop { border: 2px dashed #8c959f; border-radius: 8px; padding: 10px 14px; background: #f6f8fa; }
.drop.over { border-color: #0969da; background: #ddf4ff; }
.drop label:first-child { margin-top: 0; }
.drop input[type=file] { max-width: 100%; }
.results { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 330px), 1fr)); gap: 12px; }
.result { border: 1px solid #d0d7de; border-radius: 6px; padding: 10px; background: #fff; min-width: 0;
  font-size: 0.92em; }
.result h3 { margin: 0 0 2px; font-size: 1em; overflow-wrap: anywhere; }
.result .meta { color: #57606a; margin: 0 0 6px; font-size: 0.9em; }
.result .pair { display: flex; gap: 10px; flex-wrap: wrap; align-items: flex-start; }
.result figure { margin: 0; }
.result figure img { display: block; image-rendering: pixelated; max-width: 100%; height: auto;
  border: 1px solid #d0d7de; }
.result figcaption { font-size: 0.82em; color: #57606a; max-width: 160px; overflow-wrap: anywhere; }
.result h4 { margin: 10px 0 4px; font-size: 0.95em; overflow-wrap: anywhere; }
.ranking { list-style: none; padding: 0; margin: 8px 0 0; }
.ranking li { display: grid; grid-template-columns: minmax(0, 1fr) 5.2em minmax(36px, 70px) 3.6em; gap: 6px;
  align-items: center; margin: 2px 0; }
.ranking .badge { justify-self: start; }
.ranking button { margin: 0; padding: 2px 6px; background: #fff; color: #0969da; border: 1px solid #d0d7de;
  text-align: left; overflow-wrap: anywhere; font-size: 0.95em; }
.ranking button[aria-pressed=true] { border-color: #0969da; background: #ddf4ff; font-weight: 600; }
.ranking .prob { text-align: right; font-variant-numeric: tabular-nums; }
.bar { display: block; height: 8px; background: #eaeef2; border-radius: 4px; overflow: hidden; }
.bar span { display: block; height: 100%; background: #0969da; }
.badge { display: inline-block; white-space: nowrap; border-radius: 10px; padding: 0 7px; font-size: 0.8em; font-weight: 600;
  border: 1px solid transparent; }
.badge.seen { background: #ddf4ff; color: #0550ae; border-color: #54aeff; }
.badge.unseen { background: #fff8c5; color: #7d4e00; border-color: #d4a72c; }
.badge.taught { background: #dafbe1; color: #116329; border-color: #4ac26b; }
.terms, .neurons { margin: 2px 0 0; padding-left: 18px; overflow-wrap: anywhere; }
.error { color: #cf222e; font-weight: 600; overflow-wrap: anywhere; }
.status { overflow-wrap: anywhere; }
.status.ok { color: #1a7f37; }
.status.error { color: #cf222e; font-weight: 600; }
.result.failed { border-color: #cf222e; }
fieldset { border: 1px solid #d0d7de; border-radius: 6px; margin: 10px 0 0; padding: 4px 10px 10px; min-width: 0; }
legend { font-weight: 600; padding: 0 4px; }
.attributes { display: grid; grid-template-columns: repeat(auto-fill, minmax(104px, 1fr)); gap: 0 8px; }
.attributes label { font-weight: normal; margin: 4px 0 1px; font-size: 0.82em; overflow-wrap: anywhere; }
.attributes input[type=number] { padding: 3px 5px; }
fieldset .note { margin: 2px 0 0; font-size: 0.9em; }
.table-wrap { overflow-x: auto; }
#classes td { overflow-wrap: anywhere; }
#classes td:nth-child(2) { white-space: nowrap; }
@media (max-width: 600px) {
  #classes thead { display: none; }
  #classes, #classes tbody, #classes tr, #classes td { display: block; }
  #classes tr { border: 1px solid #d0d7de; border-radius: 6px; margin: 0 0 8px; padding: 4px 8px; }
  #classes td { border: none; padding: 2px 0; }
  #classes td:first-child { font-weight: 600; display: inline; margin-right: 6px; }
  #classes td:nth-child(2) { display: inline; }
}
"""
"""The page's style sheet: the report's (:data:`niwt.report.html.STYLE`), then the page's own rules."""


SCRIPT = r"""
"use strict";
(function () {
  const token = document.querySelector('meta[name="niwt-token"]').content;
  const cards = new Map();  // image id -> its card's parts
  let state = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  async function api(path, options) {
    options = options || {};
    const headers = {"X-NIWT-Token": token};
    let body = options.body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    } else if (options.type) {
      headers["Content-Type"] = options.type;
    }
    let response;
    try {
      response = await fetch(path, {method: options.method || "GET", headers: headers, body: body,
                                    credentials: "same-origin", cache: "no-store"});
    } catch (err) {
      throw new Error("the server cannot be reached (" + err.message + "): is niwt serve still running?");
    }
    let data = null;
    try { data = await response.json(); } catch (err) { data = null; }
    if (!response.ok) {
      throw new Error(data && data.error ? data.error : "the server answered " + response.status + " " + response.statusText);
    }
    return data;
  }

  function percent(p) { return (100 * p).toFixed(p >= 0.1 ? 1 : 2) + "%"; }
  function seconds(s) { return s < 1 ? (1000 * s).toFixed(0) + " ms" : s.toFixed(2) + " s"; }
  function badge(kind) { return el("span", {class: "badge " + kind, text: kind}); }
  function setStatus(node, text, kind) { node.textContent = text; node.className = "status" + (kind ? " " + kind : ""); }

  // ---- the run: its classes, its knowledge, where it is saved ------------------------------------
  async function refreshState() {
    state = await api("/api/state");
    const run = state.run, counts = state.counts;
    document.getElementById("run-line").textContent = "Run " + run.path + " (" + (run.dataset || "dataset") + ", " +
      run.arch + "): " + counts.seen + " seen, " + counts.unseen + " unseen and " + counts.taught + " taught classes.";
    const saved = document.getElementById("saved-line");
    saved.textContent = state.saved_to ? "Changes are saved in " + state.saved_to + "." :
      (run.in_place ? "Changes will be saved into this run itself (--in-place)." :
       "Changes will be saved as a new run beside " + run.source + "; the run itself is not changed.");
    const link = document.getElementById("report-link");
    link.hidden = !state.report.available;
    document.getElementById("report-about").textContent = state.report.available ?
      (state.report.about ? "(of " + state.report.about + ")" : "") : "The run has no report: " + state.report.about;
    const tbody = document.querySelector("#classes tbody");
    tbody.replaceChildren(...state.classes.map((c) => el("tr", {}, el("td", {text: c.name}), el("td", {}, badge(c.kind)),
                                                         el("td", {text: c.given || "-"}))));
    document.getElementById("classes-note").textContent = state.classes.length + " classes, in the order of the " +
      "classifier's rows: what each was given is what its row was learned from (seen classes: their images too).";
    const select = document.getElementById("forget-class");
    const forgettable = state.classes.filter((c) => c.kind !== "seen");
    select.replaceChildren(...forgettable.map((c) => el("option", {value: c.name, text: c.name + " (" + c.kind + ")"})));
    buildKnowledgeInputs();
    return state;
  }

  let builtFor = null;
  function buildKnowledgeInputs() {
    const box = document.getElementById("knowledge-inputs");
    const key = JSON.stringify(state.knowledge);
    if (builtFor === key) return;
    builtFor = key;
    if (state.knowledge.source === "attributes") {
      const attrs = state.knowledge.attributes || [];
      const grid = el("div", {class: "attributes"});
      attrs.forEach((a, i) => {
        const id = "attribute-" + i;
        const input = el("input", {type: "number", id: id, step: "any", "data-attribute": a.name});
        if (a.high !== null) input.setAttribute("placeholder", "0 to " + Number(a.high).toFixed(2));
        grid.append(el("div", {}, el("label", {for: id, text: a.name}), input));
      });
      box.replaceChildren(el("fieldset", {}, el("legend", {text: "Attribute values"}),
        el("p", {class: "note", text: "The run's " + attrs.length + " attributes; leave the ones the class lacks empty (0)."}),
        grid));
    } else {
      box.replaceChildren(el("label", {for: "description", text: "Description"}),
        el("textarea", {id: "description", name: "description", required: "", maxlength: String(state.limits.description),
                        placeholder: "A sentence or two that describe how the class looks"}));
    }
  }

  // ---- images ---------------------------------------------------------------------------------
  function topK() {
    const n = parseInt(document.getElementById("top-k").value, 10);
    return Number.isFinite(n) ? Math.max(1, Math.min(20, n)) : 5;
  }

  function newCard(name, anchor) {
    const card = {
      root: el("article", {class: "result"}),
      title: el("h3", {text: name}),
      meta: el("p", {class: "meta", text: "Sending…"}),
      pair: el("div", {class: "pair"}),
      ranking: el("ol", {class: "ranking", "aria-label": "classes of " + name}),
      why: el("div", {class: "why"}),
      error: el("p", {class: "error", role: "alert"}),
    };
    card.root.append(card.title, card.meta, card.error, card.pair, card.ranking, card.why);
    document.getElementById("cards").insertBefore(card.root, anchor === undefined ? null : anchor);
    return card;
  }

  function showExplanation(card, result, explained) {
    const img = el("img", {src: result.image, alt: card.name + " as the network sees it (" + state.run.image_size + " px)"});
    const map = el("img", {class: "overlay", src: explained.overlay, alt: "Grad-CAM map of " + explained.class + " over " + card.name});
    card.pair.replaceChildren(
      el("figure", {}, img, el("figcaption", {text: "as the network sees it"})),
      el("figure", {}, map, el("figcaption", {}, "map of ", el("b", {text: explained.class}), " ", badge(explained.kind))));
    const words = el("ul", {class: "terms"}, ...explained.words.map((w) => el("li", {text: w.name + " (" + w.score.toFixed(2) + ")"})));
    const neurons = el("ul", {class: "neurons"}, ...explained.neurons.map((n) =>
      el("li", {}, el("b", {text: n.name}), " (channel " + n.channel + ": " + n.terms.join(", ") + "), " +
         percent(n.share))));
    card.why.replaceChildren(
      el("h4", {text: "Why " + explained.class + ": the words its importance points to"}), words,
      el("h4", {text: "Its most important neurons: their names, and their share of its importance"}),
      explained.neurons.length ? neurons : el("p", {class: "empty", text: "no neuron has a positive importance for it"}));
    for (const button of card.ranking.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.class === explained.class));
    }
  }

  function showResult(card, result, elapsed) {
    card.id = result.id;
    card.name = result.name;
    card.root.dataset.id = result.id;
    card.root.classList.remove("failed");
    card.error.textContent = "";
    const notes = result.notes.length ? "; " + result.notes.join(", ") : "";
    card.meta.textContent = result.width + " x " + result.height + " " + result.format + notes + ". " +
      (elapsed ? seconds(result.seconds) + " on the server, " + seconds(elapsed) + " in all." :
       "Ranked again in " + seconds(result.seconds) + " on the server.");
    card.ranking.replaceChildren(...result.top.map((t) => {
      const button = el("button", {type: "button", text: t.class, "aria-pressed": "false",
                                   title: "show the map of " + t.class});
      button.dataset.class = t.class;
      button.addEventListener("click", () => explainClass(card, t.class));
      const fill = el("span");
      fill.style.width = Math.max(1, Math.round(100 * t.probability)) + "%";
      return el("li", {class: "class-" + t.kind}, button, badge(t.kind), el("span", {class: "bar"}, fill),
                el("span", {class: "prob", text: percent(t.probability)}));
    }));
    card.result = result;
    showExplanation(card, result, result.explained);
  }

  function showFailure(card, message) {
    card.root.classList.add("failed");
    card.meta.textContent = "Not shown: nothing was changed on the server.";
    card.error.textContent = message;
  }

  async function explainClass(card, className) {
    try {
      const answer = await api("/api/explain", {method: "POST", json: {id: card.id, class: className}});
      showExplanation(card, card.result, answer.explained);
    } catch (err) {
      card.error.textContent = err.message;
    }
  }

  async function sendFiles(files) {
    const status = document.getElementById("images-status");
    const anchor = document.getElementById("cards").firstChild;  // a new batch goes on top, in its own order
    const batch = files.map((file) => { const card = newCard(file.name, anchor); card.name = file.name; return card; });
    for (const [i, file] of files.entries()) {
      const card = batch[i];
      if (file.size > state.limits.upload_bytes) {
        const mib = (n) => (n / 1048576).toFixed(1) + " MiB";
        showFailure(card, file.name + " is " + mib(file.size) + "; the server takes images of at most " +
                    mib(state.limits.upload_bytes) + ": send a smaller one (nothing was sent).");
        continue;
      }
      status.textContent = "Looking at " + file.name + "…";
      const start = performance.now();
      try {
        const result = await api("/api/images?name=" + encodeURIComponent(file.name) + "&top_k=" + topK(),
                                 {method: "POST", body: file, type: "application/octet-stream"});
        showResult(card, result, (performance.now() - start) / 1000);
        cards.set(result.id, card);
      } catch (err) {
        showFailure(card, err.message);
      }
    }
    status.textContent = "";
  }

  async function rankAgain() {
    const ids = Array.from(cards.keys());
    if (!ids.length) return;
    const answer = await api("/api/rank", {method: "POST", json: {ids: ids, top_k: topK()}});
    for (const item of answer.images) {
      const card = cards.get(item.id);
      if (!card) continue;
      if (item.error) { showFailure(card, item.error); cards.delete(item.id); }
      else showResult(card, item, null);
    }
  }

  // ---- changes ----------------------------------------------------------------------------------
  async function change(kind, payload, status, button) {
    button.disabled = true;
    setStatus(status, (kind === "teach" ? "Teaching " : "Forgetting ") + payload.name + "…", "");
    try {
      const answer = await api("/api/" + kind, {method: "POST", json: payload});
      await refreshState();
      await rankAgain();
      const what = kind === "teach" ? "Taught " + answer.class + " in " + seconds(answer.seconds) :
        "Forgot " + answer.class;
      const notes = (answer.notes || []).length ? " Note: " + answer.notes.join("; ") + "." : "";
      setStatus(status, what + "; saved in " + answer.saved_to + " (" + seconds(answer.saved_seconds) +
                "). The images on the page are ranked again." + notes, "ok");
      return true;
    } catch (err) {
      setStatus(status, err.message, "error");
      try { await refreshState(); } catch (ignored) { /* the message above says what happened */ }
      return false;
    } finally {
      button.disabled = false;
    }
  }

  function teachPayload() {
    const payload = {name: document.getElementById("class-name").value};
    if (state.knowledge.source === "attributes") {
      const values = {};
      for (const input of document.querySelectorAll("#knowledge-inputs input[data-attribute]")) {
        if (input.value.trim() !== "") values[input.dataset.attribute] = Number(input.value);
      }
      payload.attributes = values;
    } else {
      payload.description = document.getElementById("description").value;
    }
    return payload;
  }

  function setUp() {
    const drop = document.getElementById("drop");
    const files = document.getElementById("files");
    files.addEventListener("change", () => { sendFiles(Array.from(files.files)); files.value = ""; });
    for (const name of ["dragenter", "dragover"]) {
      drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
    }
    for (const name of ["dragleave", "drop"]) {
      drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
    }
    drop.addEventListener("drop", (e) => sendFiles(Array.from(e.dataTransfer.files)));
    window.addEventListener("dragover", (e) => e.preventDefault());  // a file dropped beside the box is not opened
    window.addEventListener("drop", (e) => e.preventDefault());
    document.getElementById("teach-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const ok = await change("teach", teachPayload(), document.getElementById("teach-status"),
                              document.getElementById("teach-button"));
      if (ok) document.getElementById("class-name").value = "";
    });
    document.getElementById("forget-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const name = document.getElementById("forget-class").value;
      change("forget", {name: name}, document.getElementById("forget-status"), document.getElementById("forget-button"));
    });
  }

  async function start() {
    setUp();
    try {
      await refreshState();
      for (const image of state.images.slice().reverse()) {  // the images sent before a reload, newest first
        const card = newCard(image.name);
        card.name = image.name;
        card.id = image.id;
        cards.set(image.id, card);
      }
      await rankAgain();
      document.body.dataset.ready = "true";
    } catch (err) {
      document.getElementById("run-line").textContent = err.message;
      document.getElementById("run-line").className = "error";
    }
  }

  start();
})();
"""
"""The page's script."""
