// ferret's run-comparison report: everything it shows is in the JSON data element above.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") e.textContent = v; else if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  };
  const svg = (tag, attrs = {}) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  };
  const f4 = (v) => (Math.abs(v) < 5e-5 ? 0 : v).toFixed(4);
  const c = data.comparison;

  $("title").textContent = data.title;
  $("subtitle").textContent = `${data.runs[0]}  vs  ${data.runs[1]} · qrels ${data.qrels} · ${data.queries.length} queries`;
  document.title = `${data.title} — ferret compare`;

  // Means, significance marks, wins/ties/losses.
  const head = el("tr", {}, el("th", { text: "run" }), ...data.measures.map((m) => el("th", { text: m })));
  const rows = data.runs.map((name, r) => el("tr", {}, el("td", { text: name }), ...data.measures.map((_, m) => {
    let mark = "";
    if (r === 1 && c.t_test_p_holm[m] < 0.05) mark += "†";
    if (r === 1 && c.randomization_p_holm[m] < 0.05) mark += "‡";
    return el("td", { text: f4(data.means[r][m]) + mark, title: r === 1
      ? `t-test p = ${c.t_test_p[m].toPrecision(3)} (Holm ${c.t_test_p_holm[m].toPrecision(3)}), randomisation p = ${c.randomization_p[m].toPrecision(3)} (Holm ${c.randomization_p_holm[m].toPrecision(3)})`
      : "" });
  })));
  const wtlRow = el("tr", {}, el("td", { text: "wins / ties / losses" }),
    ...data.measures.map((_, m) => el("td", { text: `${c.wins[m]} / ${c.ties[m]} / ${c.losses[m]}` })));
  $("summary").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows, wtlRow));

  for (const [i, m] of data.measures.entries()) $("measure").append(el("option", { value: String(i), text: m }));
  $("measure").addEventListener("change", draw);

  let selected = null;

  function draw() {
    const m = Number($("measure").value);
    const deltas = data.queries.map((q, i) => ({ i, d: q.values[1][m] - q.values[0][m] }));
    deltas.sort((a, b) => b.d - a.d || (data.queries[a.i].id < data.queries[b.i].id ? -1 : 1));
    $("wtl").textContent = `${data.measures[m]}: ${c.wins[m]} wins, ${c.ties[m]} ties, ${c.losses[m]} losses`;
    const W = 1000, H = 280, pad = 36;
    const top = Math.max(1e-9, ...deltas.map((x) => Math.abs(x.d)));
    const y0 = H / 2, scale = (H / 2 - 14) / top;
    const step = (W - pad - 4) / Math.max(1, deltas.length);
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img",
      "aria-label": `per-query ${data.measures[m]} differences` });
    for (const [label, y] of [[f4(top), 14], ["0", y0], [f4(-top), H - 14]]) {
      const t = svg("text", { x: 2, y: y + 4 }); t.textContent = label; chart.append(t);
    }
    chart.append(svg("line", { class: "axis", x1: pad, x2: W, y1: y0, y2: y0 }));
    deltas.forEach(({ i, d }, n) => {
      const q = data.queries[i];
      const kind = Math.abs(d) < 1e-9 ? "tie" : d > 0 ? "win" : "loss";
      const h = kind === "tie" ? 1 : Math.max(1, Math.abs(d) * scale);
      const bar = svg("rect", { class: `bar ${kind}` + (selected === i ? " selected" : ""), x: pad + n * step,
        y: d > 0 ? y0 - h : y0, width: Math.max(0.5, step * 0.85), height: h, tabindex: "0",
        "data-query": q.id, "data-delta": String(d) });
      const tip = svg("title"); tip.textContent = `query ${q.id}: ${f4(d)}${q.text ? " — " + q.text : ""}`;
      bar.append(tip);
      bar.addEventListener("click", () => show(i));
      bar.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); show(i); } });
      chart.append(bar);
    });
    $("chart").replaceChildren(chart);
  }

  function ranking(name, hits) {
    const list = el("ol");
    for (const h of hits) {
      const grade = h.rel == null ? el("span", { class: "grade unjudged", text: "unjudged" })
        : el("span", { class: "grade " + (h.rel > 0 ? "rel" : "nonrel"), text: `grade ${h.rel}` });
      list.append(el("li", { "data-doc": h.id }, grade, el("span", { text: h.title || h.id }),
        h.title ? el("span", { class: "docid", text: h.id }) : null));
    }
    return el("div", { class: "ranking" }, el("h3", { text: name }), hits.length ? list : el("p", { text: "no hits" }));
  }

  function show(i) {
    selected = i;
    for (const b of document.querySelectorAll("#chart .bar")) b.classList.toggle("selected", b.dataset.query === data.queries[i].id);
    const q = data.queries[i];
    const values = data.measures.map((m, j) => `${m} ${f4(q.values[0][j])} → ${f4(q.values[1][j])}`).join(" · ");
    const panel = $("query");
    panel.replaceChildren(el("h2", { text: `Query ${q.id}${q.text ? ": " + q.text : ""}` }),
      el("p", { class: "values", text: values }),
      el("div", { class: "rankings" }, ranking(data.runs[0], q.hits[0]), ranking(data.runs[1], q.hits[1])));
    panel.hidden = false;
  }

  draw();
})();
