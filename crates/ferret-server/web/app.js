// ferret's search page: talks to the JSON API of the server that serves it, nothing else.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
};

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const r = await fetch(path, init);
  const data = await r.json().catch(() => ({ error: { code: "bad_response", message: `HTTP ${r.status}` } }));
  if (!r.ok) throw data.error || { code: "http_" + r.status, message: `HTTP ${r.status}` };
  return data;
}

// ---- pipelines: presets, inline validation -------------------------------------------------

const sides = [
  { preset: $("preset"), text: $("pipeline"), error: $("pipeline-error") },
  { preset: $("preset2"), text: $("pipeline2"), error: $("pipeline2-error") },
];

function fillPresets(presets) {
  for (const side of sides) {
    side.preset.replaceChildren(el("option", { value: "", text: "custom…" }));
    for (const p of presets) side.preset.append(el("option", { value: p.pipeline, text: p.name }));
    side.preset.value = [...side.preset.options].some((o) => o.value === side.text.value) ? side.text.value : "";
    side.preset.addEventListener("change", () => {
      if (side.preset.value) { side.text.value = side.preset.value; validate(side); updateCompareLink(); }
    });
  }
}

function showPipelineError(side, err) {
  if (!err) {
    side.error.hidden = true;
    side.error.textContent = "";
    side.text.classList.remove("invalid");
    side.text.removeAttribute("aria-invalid");
    return;
  }
  let msg = err.message;
  if (typeof err.position === "number") {
    msg = `${side.text.value}\n${" ".repeat(err.position)}^ ${err.message} (position ${err.position + 1})`;
  }
  side.error.textContent = msg;
  side.error.hidden = false;
  side.text.classList.add("invalid");
  side.text.setAttribute("aria-invalid", "true");
}

async function validate(side) {
  const text = side.text.value;
  try {
    await api("/v1/pipeline", { pipeline: text });
    if (side.text.value === text) showPipelineError(side, null);
    return true;
  } catch (err) {
    if (side.text.value === text) showPipelineError(side, err);
    return false;
  }
}

for (const side of sides) {
  let timer;
  side.text.addEventListener("input", () => {
    side.preset.value = [...side.preset.options].some((o) => o.value === side.text.value) ? side.text.value : "";
    clearTimeout(timer);
    timer = setTimeout(() => validate(side), 250);
  });
}

$("compare").addEventListener("change", () => {
  $("pipeline-b").hidden = !$("compare").checked;
  updateCompareLink();
  if ($("q").value.trim()) search();
});

// ---- judgements: judged queries, grades on hits, per-query measures ---------------------------

let judged = null; // { set, id, text }: the judged query being searched
let measureOrder = []; // as the server lists them (nDCG@10, R@100, AP)

function showJudged() {
  const current = $("judged-current");
  current.replaceChildren();
  if (!judged) return;
  const clear = el("button", { type: "button", text: "not this query" });
  clear.addEventListener("click", () => { judged = null; showJudged(); });
  current.append(`judged query ${judged.id} (${judged.set}) `, clear);
}

let findSeq = 0;
async function findJudged() {
  const set = $("qrels-set").value;
  const list = $("judged-query");
  if (!set) { list.replaceChildren(); return; }
  const seq = ++findSeq;
  const words = encodeURIComponent($("judged-search").value);
  const found = await api(`/v1/qrels/${encodeURIComponent(set)}/queries?search=${words}&limit=200`);
  if (seq !== findSeq) return;
  list.replaceChildren(el("option", { value: "", text: `${found.total} judged queries${found.total > found.queries.length ? ` (first ${found.queries.length})` : ""}: pick one` }));
  for (const q of found.queries) {
    const option = el("option", { value: q.id, text: `${q.id}: ${q.text ?? "(no text: type it)"} · ${q.relevant} relevant` });
    option.dataset.text = q.text ?? "";
    list.append(option);
  }
}

$("qrels-set").addEventListener("change", () => { judged = null; showJudged(); updateCompareLink(); findJudged(); });
{
  let timer;
  $("judged-search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(findJudged, 200); });
}
$("judged-query").addEventListener("change", () => {
  const option = $("judged-query").selectedOptions[0];
  if (!option || !option.value) return;
  if (option.dataset.text) $("q").value = option.dataset.text;
  judged = { set: $("qrels-set").value, id: option.value, text: $("q").value };
  showJudged();
  if ($("q").value.trim()) search();
});
// Editing the text makes it another query: its hits are no longer judged.
$("q").addEventListener("input", () => {
  if (judged && $("q").value !== judged.text) { judged = null; showJudged(); }
});

function updateCompareLink() {
  const link = $("compare-all");
  const set = $("qrels-set").value;
  link.hidden = !(set && $("compare").checked);
  const params = new URLSearchParams({ qrels: set, a: sides[0].text.value, b: sides[1].text.value });
  link.href = "/compare?" + params;
}
for (const side of sides) side.text.addEventListener("input", updateCompareLink);

function gradeNode(hit) {
  if (hit.relevance === undefined) return null;
  if (hit.relevance === null) return el("span", { class: "grade unjudged", text: "unjudged" });
  return el("span", { class: "grade " + (hit.relevance > 0 ? "rel" : "nonrel"), text: `grade ${hit.relevance}` });
}

const f4 = (v) => (Math.abs(v) < 5e-5 ? 0 : v).toFixed(4);

function showEvaluation(results) {
  const box = $("evaluation");
  const evals = results.map((r) => r.evaluation);
  if (!evals[0]) { box.hidden = true; box.replaceChildren(); return; }
  const names = Object.keys(evals[0].measures)
    .sort((a, b) => measureOrder.indexOf(a) - measureOrder.indexOf(b));
  const cells = results.map((r, i) => el("div", { class: "measures", "data-pipeline": r.pipeline },
    `query ${evals[i].query_id} (${evals[i].relevant} relevant) · `,
    ...names.flatMap((m, j) => [j ? " · " : "", el("span", { "data-measure": m, text: `${m} ${f4(evals[i].measures[m])}` })]),
    i === 1 ? el("div", {}, "second − first: ", ...names.flatMap((m, j) => {
      const d = evals[1].measures[m] - evals[0].measures[m];
      const kind = Math.abs(d) < 1e-9 ? "" : d > 0 ? " up" : " down";
      return [j ? " · " : "", el("span", { class: "delta" + kind, "data-delta": m, text: `${m} ${d > 0 ? "+" : ""}${f4(d)}` })];
    })) : null));
  box.replaceChildren(...cells);
  box.hidden = false;
}

// ---- the URL: query, pipelines, k, compare mode and judged query, so a search can be shared ----

function urlOfState() {
  const p = new URLSearchParams();
  p.set("q", $("q").value);
  p.set("p", sides[0].text.value);
  if ($("compare").checked) { p.set("compare", "1"); p.set("p2", sides[1].text.value); }
  p.set("k", $("k").value);
  if (judged) { p.set("qrels", judged.set); p.set("qid", judged.id); }
  return "?" + p;
}

function restoreState(params) {
  if (params.has("q")) $("q").value = params.get("q");
  if (params.has("p")) sides[0].text.value = params.get("p");
  if (params.has("p2")) sides[1].text.value = params.get("p2");
  if (params.has("k")) $("k").value = params.get("k");
  $("compare").checked = params.get("compare") === "1";
  $("pipeline-b").hidden = !$("compare").checked;
  judged = null;
  if (params.has("qrels") && params.has("qid") && [...$("qrels-set").options].some((o) => o.value === params.get("qrels"))) {
    $("qrels-set").value = params.get("qrels");
    judged = { set: params.get("qrels"), id: params.get("qid"), text: $("q").value };
  }
  for (const side of sides) {
    side.preset.value = [...side.preset.options].some((o) => o.value === side.text.value) ? side.text.value : "";
  }
  showJudged();
  updateCompareLink();
}

window.addEventListener("popstate", () => {
  restoreState(new URLSearchParams(location.search));
  if ($("q").value.trim()) search();
});

// ---- search and results ----------------------------------------------------------------------

function snippetNode(segments) {
  const p = el("p", { class: "snippet" });
  for (const s of segments) p.append(s.hit ? el("mark", { text: s.text }) : document.createTextNode(s.text));
  return p;
}

function explainNode(hit, stages) {
  const table = el("table", {},
    el("thead", {}, el("tr", {}, el("th", { text: "stage" }), el("th", { text: "rank" }),
      el("th", { text: "score" }), el("th", { text: "ms" }))));
  const body = el("tbody");
  const byStage = new Map((hit.explain || []).map((p) => [p.stage, p]));
  stages.forEach((s, i) => {
    const p = byStage.get(i);
    body.append(el("tr", {},
      el("td", { class: "stage", text: "\u00a0\u00a0".repeat(s.depth) + s.stage }),
      el("td", { class: "num", text: p ? String(p.rank) : "—" }),
      el("td", { class: "num", text: p ? p.score.toFixed(4) : "—" }),
      el("td", { class: "num", text: s.millis.toFixed(2) })));
    const matched = p && p.detail && p.detail.matched_terms;
    if (matched && matched.length) {
      const shown = matched.slice(0, 12).map(([term, c]) => term + " " + Number(c).toFixed(2)).join(", ");
      const more = matched.length > 12 ? ", … (" + matched.length + " terms)" : "";
      body.append(el("tr", { class: "sub" }, el("td", { colspan: "4", text: "matched terms: " + shown + more })));
    }
    if (s.formula) body.append(el("tr", { class: "sub" }, el("td", { colspan: "4", text: "fusion: " + s.formula })));
    if (s.note) body.append(el("tr", { class: "sub" }, el("td", { colspan: "4", text: "note: " + s.note })));
  });
  table.append(body);
  return el("div", { class: "explain" }, table);
}

function toggleExplain(li) {
  const button = li.querySelector(".explain-toggle");
  const panel = li.querySelector(".explain");
  const open = panel.hidden;
  panel.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
  button.textContent = open ? "hide explain" : "explain";
}

function column(result, other) {
  const otherRank = new Map((other ? other.hits : []).map((h) => [h.id, h.rank]));
  const list = el("ol");
  for (const hit of result.hits) {
    let move = null;
    if (other) {
      const r = otherRank.get(hit.id);
      if (r === undefined) move = el("span", { class: "move new", text: "new", title: "not in the other ranking" });
      else if (r !== hit.rank) {
        const up = r > hit.rank;
        move = el("span", { class: "move " + (up ? "up" : "down"), text: (up ? "▲" : "▼") + Math.abs(r - hit.rank),
          title: `rank ${r} in the other ranking` });
      }
    }
    const panel = explainNode(hit, result.stages || []);
    panel.hidden = true;
    const button = el("button", { type: "button", class: "explain-toggle", "aria-expanded": "false", text: "explain" });
    const thumb = hit.has_image
      ? el("a", { href: `/v1/documents/${encodeURIComponent(hit.id)}/image`, target: "_blank", class: "thumb-link" },
        el("img", { class: "thumb", loading: "lazy", alt: `image ${hit.id}`,
          src: `/v1/documents/${encodeURIComponent(hit.id)}/thumbnail` }))
      : null;
    const li = el("li", { class: "hit" + (thumb ? " with-image" : ""), tabindex: "0", "data-id": hit.id }, thumb,
      el("div", { class: "head" },
        el("span", { class: "rank", text: String(hit.rank) }),
        gradeNode(hit),
        el("span", { class: "title", text: hit.title || hit.id }),
        move,
        el("span", { class: "meta", text: `${hit.id} · ${hit.score.toFixed(4)}` })),
      snippetNode(hit.snippet), button, panel);
    button.addEventListener("click", () => toggleExplain(li));
    list.append(li);
  }
  const heading = el("h2", { text: `${result.pipeline} — ${result.hits.length} hits, ${result.took_ms.toFixed(1)} ms` });
  return el("section", { class: "column", "aria-label": result.pipeline }, heading,
    result.hits.length ? list : el("p", { text: "no results" }));
}

// ---- image query ------------------------------------------------------------------------------

let queryImage = null; // { name, base64 }

function setImage(file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    queryImage = { name: file.name, base64: String(reader.result) };
    const preview = $("image-preview");
    preview.src = reader.result;
    preview.hidden = false;
    $("image-clear").hidden = false;
  };
  reader.readAsDataURL(file);
}

function clearImage() {
  queryImage = null;
  $("image").value = "";
  $("image-preview").hidden = true;
  $("image-preview").removeAttribute("src");
  $("image-clear").hidden = true;
}

$("image").addEventListener("change", (e) => setImage(e.target.files[0]));
$("image-clear").addEventListener("click", clearImage);
for (const name of ["dragenter", "dragover"]) {
  $("drop").addEventListener(name, (e) => { e.preventDefault(); $("drop").classList.add("dragging"); });
}
$("drop").addEventListener("dragleave", () => $("drop").classList.remove("dragging"));
$("drop").addEventListener("drop", (e) => {
  e.preventDefault();
  $("drop").classList.remove("dragging");
  setImage(e.dataTransfer.files[0]);
});

let searchSeq = 0;
async function search() {
  // With an image, the text is optional: the file name labels the query.
  const query = $("q").value.trim() ? $("q").value : (queryImage ? queryImage.name : "");
  if (!query.trim()) { $("q").focus(); return; }
  const k = Number($("k").value) || 10;
  const active = $("compare").checked ? sides : sides.slice(0, 1);
  const seq = ++searchSeq;
  const status = $("status");
  status.className = "";
  status.textContent = "searching…";
  try {
    const results = await Promise.all(active.map((side) =>
      api("/v1/search", { query, pipeline: side.text.value, k, explain: true,
        ...(queryImage ? { image: queryImage.base64 } : {}),
        ...(judged ? { qrels: { set: judged.set, query_id: judged.id } } : {}) }).catch((err) => {
        if (err.code === "invalid_pipeline") showPipelineError(side, err);
        throw err;
      })));
    if (seq !== searchSeq) return;
    active.forEach((side) => showPipelineError(side, null));
    const cols = results.map((r, i) => column(r, results.length > 1 ? results[1 - i] : null));
    $("results").replaceChildren(...cols);
    showEvaluation(results);
    status.textContent = `${results[0].hits.length} results`;
    const url = urlOfState();
    if (url !== location.search) history.pushState(null, "", url);
  } catch (err) {
    if (seq !== searchSeq) return;
    status.className = "error";
    status.textContent = `${err.code}: ${err.message}`;
  }
}

$("search-form").addEventListener("submit", (e) => { e.preventDefault(); search(); });

// ---- keyboard --------------------------------------------------------------------------------

document.addEventListener("keydown", (e) => {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  // Escape leaves a text box, so that the keys below act on the results.
  if (e.key === "Escape") { if (typing) document.activeElement.blur(); return; }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  const hits = [...document.querySelectorAll(".hit")];
  const i = hits.indexOf(document.activeElement.closest(".hit"));
  if (e.key === "/") { e.preventDefault(); $("q").focus(); $("q").select(); }
  else if (e.key === "j" || e.key === "ArrowDown") { e.preventDefault(); hits[Math.min(i + 1, hits.length - 1)]?.focus(); }
  else if (e.key === "k" || e.key === "ArrowUp") { e.preventDefault(); hits[Math.max(i - 1, 0)]?.focus(); }
  else if ((e.key === "e" || e.key === "Enter") && i >= 0 && document.activeElement === hits[i]) { e.preventDefault(); toggleExplain(hits[i]); }
  else if (e.key === "c") { $("compare").click(); }
});

// ---- start -----------------------------------------------------------------------------------

Promise.all([api("/v1/index"), api("/v1/qrels")]).then(([info, sets]) => {
  $("index-info").textContent = `${info.name}: ${info.documents} documents · ${info.representations.join(", ")}`;
  if (sets.length) {
    measureOrder = sets[0].measures;
    $("qrels-set").replaceChildren(el("option", { value: "", text: "no judgements" }),
      ...sets.map((s) => el("option", { value: s.name, text: `${s.name}: ${s.queries} judged queries` })));
    $("judgements").hidden = false;
  }
  const params = new URLSearchParams(location.search);
  restoreState(params);
  fillPresets(info.presets);
  if ($("qrels-set").value) findJudged();
  if ($("q").value.trim()) search();
}).catch((err) => {
  $("status").className = "error";
  $("status").textContent = `cannot read the index: ${err.message}`;
});
$("q").focus();
