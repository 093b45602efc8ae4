// Opens a `ferret compare` report from disk in headless Chromium with the network off and
// checks that it renders completely: one chart bar per query, the wins/ties/losses given,
// and a click on a bar showing that query's two rankings with judgements.
// Usage: node compare_report.cjs REPORT.html SCREENSHOT.png QUERIES WINS TIES LOSSES
"use strict";
const { chromium } = require("playwright-core");

const [report, screenshot, ...numbers] = process.argv.slice(2);
const [queries, wins, ties, losses] = numbers.map(Number);
if (!report || !screenshot || numbers.length !== 4) {
  console.error("usage: node compare_report.cjs REPORT.html SCREENSHOT.png QUERIES WINS TIES LOSSES");
  process.exit(2);
}

function expect(cond, what) {
  if (!cond) throw new Error("expected " + what);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const problems = [];
  try {
    const context = await browser.newContext({ offline: true, viewport: { width: 1400, height: 1100 } });
    // Anything but the file itself would be a request the report must not make.
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (url.startsWith("file:")) return route.continue();
      problems.push("request made: " + url);
      return route.abort();
    });
    const page = await context.newPage();
    page.on("pageerror", (e) => problems.push("page error: " + e.message));
    page.on("console", (m) => { if (m.type() === "error") problems.push("console error: " + m.text()); });
    await page.goto("file://" + require("path").resolve(report));
    await page.waitForSelector("#chart .bar");
    const bars = await page.$$eval("#chart .bar", (b) => b.length);
    expect(bars === queries, `${queries} bars, got ${bars}`);
    const counted = await page.$$eval("#chart .bar", (b) => ["win", "tie", "loss"].map((k) => b.filter((x) => x.classList.contains(k)).length));
    expect(counted.join("/") === [wins, ties, losses].join("/"), `bars won/tied/lost ${wins}/${ties}/${losses}, got ${counted.join("/")}`);
    const wtl = await page.$eval("#wtl", (e) => e.textContent);
    expect(wtl.includes(`${wins} wins, ${ties} ties, ${losses} losses`), "the wins/ties/losses line, got " + wtl);
    const deltas = await page.$$eval("#chart .bar", (b) => b.map((x) => Number(x.dataset.delta)));
    expect(deltas.every((d, i) => i === 0 || deltas[i - 1] >= d), "bars sorted by gain");
    const summary = await page.$$eval("#summary tbody tr", (r) => r.length);
    expect(summary === 3, "two runs and the wins/ties/losses row in the summary, got " + summary);

    // The biggest loss: its two rankings side by side, with grades.
    const last = (await page.$$("#chart .bar")).pop();
    const qid = await last.getAttribute("data-query");
    await last.click();
    await page.waitForSelector("#query:not([hidden])");
    const heading = await page.$eval("#query h2", (h) => h.textContent);
    expect(heading.startsWith(`Query ${qid}`), `the clicked query ${qid}, got ${heading}`);
    const columns = await page.$$eval("#query .ranking", (r) => r.map((x) => x.querySelectorAll("li").length));
    expect(columns.length === 2 && columns.every((n) => n > 0), "two rankings, got " + columns);
    const grades = await page.$$eval("#query .grade", (g) => g.map((x) => x.textContent));
    expect(grades.some((g) => g.startsWith("grade")), "judged hits marked with their grade, got " + grades.slice(0, 5));
    await page.screenshot({ path: screenshot, fullPage: true });
    expect(problems.length === 0, "no errors and no requests, got " + problems.join("; "));
    console.log(JSON.stringify({ ok: true, bars, counted, qid, columns, screenshot }));
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
