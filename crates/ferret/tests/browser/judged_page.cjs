// The page with relevance judgements (ferret serve --qrels … --queries …) in headless Chromium:
// a judged query picked from the list shows grades on its hits and each pipeline's measures
// (checked against `ferret eval` of `ferret run`'s runs, passed in), the per-query difference
// in compare mode, a copied URL repeating the search, Escape then j, e opening the first hit's
// explain without touching the query box, underscores visible in pipeline boxes, and /compare
// with one bar per judged query and ferret eval's wins/ties/losses.
// Usage: node judged_page.cjs BASE_URL SCREENSHOT.png EXPECTED_JSON
"use strict";
const { chromium } = require("playwright-core");

const [base, screenshot, expectedJson] = process.argv.slice(2);
if (!base || !screenshot || !expectedJson) {
  console.error("usage: node judged_page.cjs BASE_URL SCREENSHOT.png EXPECTED_JSON");
  process.exit(2);
}
// { set, query, texts: {first, second} (nDCG@10 …, as ferret eval prints them), queries, wins, ties, losses }
const want = JSON.parse(expectedJson);
// Measures shown, in the page's order (nDCG@10, R@100, AP).
const order = (m) => JSON.stringify(["nDCG@10", "R@100", "AP"].map((k) => [k, m[k]]));

function expect(cond, what) {
  if (!cond) throw new Error("expected " + what);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const problems = [];
  const watch = (page) => {
    page.on("pageerror", (e) => problems.push("page error: " + e.message));
    page.on("console", (m) => { if (m.type() === "error") problems.push("console error: " + m.text()); });
    page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`); });
    page.on("request", (r) => { if (!r.url().startsWith(base)) problems.push("request outside the server: " + r.url()); });
  };
  const measuresOf = (page) => page.$$eval("#evaluation .measures", (cells) => cells.map((c) =>
    Object.fromEntries([...c.querySelectorAll("[data-measure]")].map((s) => [s.dataset.measure, s.textContent.split(" ").pop()]))));
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  watch(page);
  try {
    await page.goto(base + "/");
    await page.waitForSelector("#judgements:not([hidden])");
    await page.selectOption("#qrels-set", want.set);
    await page.fill("#judged-search", want.query);
    await page.waitForSelector(`#judged-query option[value="${want.query}"]`, { state: "attached" });
    await page.selectOption("#judged-query", want.query);
    await page.waitForSelector("#evaluation:not([hidden])");
    await page.waitForSelector(".hit");

    // Grades on every hit, some relevant; the pipeline's measures as ferret eval gives them.
    const grades = await page.$$eval(".hit", (hits) => hits.map((h) => h.querySelector(".grade")?.textContent));
    expect(grades.length === 10 && grades.every((g) => g === "unjudged" || /^grade \d+$/.test(g)), "a grade or 'unjudged' on all 10 hits, got " + grades);
    expect(grades.some((g) => g.startsWith("grade")), "a judged hit among the first 10, got " + grades);
    let shown = await measuresOf(page);
    expect(order(shown[0]) === order(want.texts.first) && Object.keys(shown[0]).join() === "nDCG@10,R@100,AP", `measures ${JSON.stringify(want.texts.first)}, got ${JSON.stringify(shown)}`);

    // Compare mode: both pipelines' measures and their difference.
    await page.check("#compare");
    await page.waitForFunction(() => document.querySelectorAll("#evaluation .measures").length === 2);
    shown = await measuresOf(page);
    expect(order(shown[1]) === order(want.texts.second), `second pipeline's measures ${JSON.stringify(want.texts.second)}, got ${JSON.stringify(shown)}`);
    const delta = await page.$eval('#evaluation [data-delta="nDCG@10"]', (d) => d.textContent);
    const expectedDelta = Number(want.texts.second["nDCG@10"]) - Number(want.texts.first["nDCG@10"]);
    expect(Math.abs(Number(delta.split(" ").pop()) - expectedDelta) < 2e-4, `nDCG@10 difference ${expectedDelta}, got ${delta}`);
    const hitsA = await page.$$eval(".column", (cols) => cols.map((c) => [...c.querySelectorAll(".hit")].map((h) => h.dataset.id)));

    // Underscores stay visible: the pipeline boxes' lines are tall enough for descenders.
    const box = await page.$eval("#pipeline2", (i) => { const s = getComputedStyle(i); return { lh: parseFloat(s.lineHeight), fs: parseFloat(s.fontSize), value: i.value }; });
    expect(box.value.includes("_") && box.lh >= 1.4 * box.fs, "a line height of at least 1.4 em in the pipeline box, got " + JSON.stringify(box));
    await (await page.$("#pipeline-b")).screenshot({ path: screenshot.replace(/\.png$/, "") + "-pipeline-box.png" });
    await page.screenshot({ path: screenshot, fullPage: true });

    // The URL repeats the search in a fresh page.
    const url = page.url();
    expect(url.includes(`qid=${want.query}`) && url.includes("compare=1"), "the search in the URL, got " + url);
    const again = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    watch(again);
    await again.goto(url);
    await again.waitForFunction(() => document.querySelectorAll("#evaluation .measures").length === 2);
    const hitsB = await again.$$eval(".column", (cols) => cols.map((c) => [...c.querySelectorAll(".hit")].map((h) => h.dataset.id)));
    expect(JSON.stringify(hitsA) === JSON.stringify(hitsB), "the same rankings from the URL");
    expect(JSON.stringify(await measuresOf(again)) === JSON.stringify(shown), "the same measures from the URL");
    const restored = await again.evaluate(() => ({ q: document.getElementById("q").value, compare: document.getElementById("compare").checked }));

    // Escape leaves the query box; j and e then open the first hit's explain panel.
    await again.focus("#q");
    await again.keyboard.press("Escape");
    const left = await again.evaluate(() => document.activeElement.id !== "q");
    expect(left, "Escape to leave the query box");
    await again.keyboard.press("j");
    await again.keyboard.press("e");
    const first = await again.$eval(".hit", (h) => ({ focused: h === document.activeElement, open: !h.querySelector(".explain").hidden }));
    expect(first.focused && first.open, "the first hit focused with its explain open, got " + JSON.stringify(first));
    const q = await again.$eval("#q", (i) => i.value);
    expect(q === restored.q, `the query box untouched (${restored.q}), got ${q}`);

    // The compare view over all judged queries.
    const href = await page.$eval("#compare-all", (a) => (a.hidden ? null : a.getAttribute("href")));
    expect(href && href.startsWith("/compare?"), "a link to /compare, got " + href);
    const report = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    watch(report);
    await report.goto(base + href);
    await report.waitForSelector("#chart .bar");
    const bars = await report.$$eval("#chart .bar", (b) => ["win", "tie", "loss"].map((k) => b.filter((x) => x.classList.contains(k)).length));
    expect(bars.reduce((a, b) => a + b) === want.queries, `${want.queries} bars, got ${bars}`);
    expect(bars.join("/") === [want.wins, want.ties, want.losses].join("/"), `wins/ties/losses ${want.wins}/${want.ties}/${want.losses}, got ${bars.join("/")}`);
    await (await report.$$("#chart .bar"))[0].click();
    await report.waitForSelector("#query .ranking li");
    await report.screenshot({ path: screenshot.replace(/\.png$/, "") + "-compare.png", fullPage: true });
    expect(problems.length === 0, "no page errors or failed requests, got " + problems.join("; "));
    console.log(JSON.stringify({ ok: true, grades, shown, delta, url, bars, screenshot }));
  } catch (e) {
    await page.screenshot({ path: screenshot.replace(/\.png$/, "") + "-failed.png", fullPage: true }).catch(() => {});
    throw new Error(`${e.message}\nproblems: ${problems.join("; ")}`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
