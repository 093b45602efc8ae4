// Drives ferret's search page in headless Chromium (playwright-core, Debian's /usr/bin/chromium):
// load, search, open explain with the keyboard, see a pipeline error inline, switch preset,
// compare two pipelines, screenshot. Usage: node search_page.cjs BASE_URL SCREENSHOT.png
// Exits non-zero with a message at the first failed expectation. playwright-core is found
// through NODE_PATH (scripts/test.sh installs it), hence CommonJS.
"use strict";
const { chromium } = require("playwright-core");

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error("usage: node search_page.cjs BASE_URL SCREENSHOT.png");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

function expect(cond, what) {
  if (!cond) throw new Error("expected " + what);
}

async function main() {
const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
try {
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  // Failed responses are judged below by status (a 400 for a broken pipeline is expected).
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push("console error: " + m.text());
  });
  page.on("response", (r) => {
    if (r.status() >= 500 || r.status() === 404) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  page.on("request", (r) => { if (process.env.DEBUG) console.log("REQ", r.method(), r.url(), r.postData()); if (!r.url().startsWith(base)) problems.push("request outside the server: " + r.url()); });

  await page.goto(base + "/");
  await page.waitForFunction(() => /documents/.test(document.getElementById("index-info").textContent));
  const presets = await page.$$eval("#preset option", (os) => os.map((o) => o.textContent));
  expect(presets.includes("BM25 + RM3"), "presets from the index, got " + presets);

  // Type a query, press Enter, see results with highlighted snippets.
  await page.focus("#q");
  await page.keyboard.type("microRNA regulation of cancer");
  await page.keyboard.press("Enter");
  await page.waitForSelector(".hit");
  const hits = await page.$$eval(".hit", (h) => h.length);
  expect(hits === 10, "10 hits, got " + hits);
  const marks = await page.$$eval(".hit mark", (m) => m.map((x) => x.textContent.toLowerCase()));
  expect(marks.some((m) => m.startsWith("microrna") || m.startsWith("cancer")), "highlighted query terms, got " + marks.slice(0, 5));

  // Keyboard: "/" leaves the query box alone while typing; Escape, then j moves to the first hit, e opens explain.
  await page.keyboard.press("Escape");
  await page.evaluate(() => document.activeElement.blur());
  await page.keyboard.press("j");
  const focused = await page.evaluate(() => document.activeElement.classList.contains("hit"));
  expect(focused, "j to focus the first hit");
  await page.keyboard.press("e");
  const explain = await page.$eval(".hit .explain", (e) => ({ hidden: e.hidden, text: e.textContent }));
  expect(!explain.hidden && explain.text.includes("bm25"), "an open explain panel naming bm25, got " + JSON.stringify(explain));

  // A broken pipeline shows its error inline, with the position.
  await page.fill("#pipeline", "bm25 >> rm3(fb_docs=)");
  await page.waitForSelector("#pipeline-error:not([hidden])");
  const error = await page.$eval("#pipeline-error", (e) => e.textContent);
  expect(/position \d+/.test(error) && error.includes("^"), "a positioned pipeline error, got " + error);

  // Switch to a preset: the error goes, the search runs with it.
  await page.selectOption("#preset", { label: "BM25 + RM3" });
  await page.waitForSelector("#pipeline-error", { state: "hidden" });
  await page.click("#go");
  await page.waitForFunction(() => /rm3/.test(document.querySelector(".column h2")?.textContent || ""));

  // Compare with a second pipeline: two columns, rank movements shown.
  await page.selectOption("#preset", { label: "BM25" });
  await page.check("#compare");
  await page.waitForFunction(() => document.querySelectorAll(".column").length === 2);
  const headings = await page.$$eval(".column h2", (h) => h.map((x) => x.textContent));
  expect(headings[0].startsWith("bm25") && headings[1].includes("rm3"), "bm25 and rm3 columns, got " + headings);
  const moves = await page.$$eval(".move", (m) => m.length);
  expect(moves > 0, "rank movements between the two rankings");

  // Open the explain panel of the second ranking's first hit (its stages: bm25, rm3) for the
  // screenshot.
  await page.click(".column:nth-child(2) .hit .explain-toggle");
  const stages = await page.$$eval(".column:nth-child(2) .hit .explain tbody tr", (r) => r.length);
  expect(stages >= 3, "the rm3 pipeline's stages in explain, got " + stages + " rows");
  await page.screenshot({ path: screenshot, fullPage: true });
  expect(problems.length === 0, "no page errors or outside requests, got " + problems.join("; "));
  console.log(JSON.stringify({ ok: true, hits, presets, headings, moves, screenshot }));
} catch (e) {
  // What the page showed when it went wrong, for the test's message.
  const state = await page.evaluate(() => ({
    status: document.getElementById("status")?.textContent,
    pipeline: document.getElementById("pipeline")?.value,
    error: document.getElementById("pipeline-error")?.textContent,
    headings: [...document.querySelectorAll(".column h2")].map((h) => h.textContent),
  })).catch(() => null);
  await page.screenshot({ path: screenshot.replace(/\.png$/, "") + "-failed.png", fullPage: true }).catch(() => {});
  throw new Error(`${e.message}\npage state: ${JSON.stringify(state)}\nproblems: ${problems.join("; ")}`);
} finally {
  await browser.close();
}
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
