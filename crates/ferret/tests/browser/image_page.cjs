// Drives ferret's search page over an image index in headless Chromium (playwright-core,
// Debian's /usr/bin/chromium): image→image by dropping an image on the page, text→image by
// typing a caption, thumbnails loaded in the hit lists, screenshot.
// Usage: node image_page.cjs BASE_URL SCREENSHOT.png QUERY_IMAGE EXPECTED_FIRST_ID
"use strict";
const fs = require("fs");
const { chromium } = require("playwright-core");

const [base, screenshot, queryImage, expectedId] = process.argv.slice(2);
if (!expectedId) {
  console.error("usage: node image_page.cjs BASE_URL SCREENSHOT.png QUERY_IMAGE EXPECTED_FIRST_ID");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

function expect(cond, what) {
  if (!cond) throw new Error("expected " + what);
}

// The widths of the hit lists' thumbnails once they have loaded (a broken image has
// naturalWidth 0). Thumbnails load lazily, so the page is scrolled to bring them all near the
// viewport; the wait gives up after 10 s and the caller judges the widths.
// The widths of the hits' thumbnails once all have loaded (read in the same step as the check,
// so a re-render in between cannot mix in images not loaded yet), or as they are after 10 s.
async function thumbnailsLoaded(page) {
  await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  const loaded = await page.waitForFunction(() => {
    const w = [...document.querySelectorAll(".hit img.thumb")].map((i) => (i.complete ? i.naturalWidth : 0));
    return w.length > 0 && w.every((x) => x > 0) && w;
  }, null, { timeout: 10000 }).catch(() => null);
  return loaded
    ? loaded.jsonValue()
    : page.$$eval(".hit img.thumb", (imgs) => imgs.map((i) => (i.complete ? i.naturalWidth : 0)));
}

async function main() {
const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
try {
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") problems.push("console error: " + m.text()); });
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`); });
  page.on("request", (r) => { if (!r.url().startsWith(base) && !r.url().startsWith("data:")) problems.push("request outside the server: " + r.url()); });

  await page.goto(base + "/");
  await page.waitForFunction(() => /documents/.test(document.getElementById("index-info").textContent));
  await page.fill("#pipeline", "clip");

  // image → image: drop the image on the page's drop zone.
  const bytes = fs.readFileSync(queryImage).toString("base64");
  const transfer = await page.evaluateHandle((b64) => {
    const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([raw], "query.jpg", { type: "image/jpeg" }));
    return dt;
  }, bytes);
  await page.dispatchEvent("#drop", "drop", { dataTransfer: transfer });
  await page.waitForSelector("#image-preview:not([hidden])");
  await page.click("#go");
  await page.waitForSelector(".hit");
  const first = await page.$eval(".hit", (h) => h.dataset.id);
  expect(first === expectedId, `the dropped image to find itself first (${expectedId}), got ${first}`);
  const widths = await thumbnailsLoaded(page);
  expect(widths.length >= 3 && widths.every((w) => w > 0), "loaded thumbnails, got widths " + widths);

  // text → image: remove the image, type a caption.
  await page.click("#image-clear");
  await page.fill("#q", "a dog runs through the snow");
  // The image query's hits stay on the page until the text query's replace them: wait for that.
  const previous = await page.$(".hit");
  await page.click("#go");
  await page.waitForFunction((hit) => !hit.isConnected, previous, { timeout: 10000 });
  await page.waitForFunction(() => /clip/.test(document.querySelector(".column h2")?.textContent || "") && !document.querySelector("#image-preview:not([hidden])"));
  const textWidths = await thumbnailsLoaded(page);
  expect(textWidths.length >= 3 && textWidths.every((w) => w > 0), "thumbnails for a text query, got " + textWidths);
  await page.screenshot({ path: screenshot, fullPage: true });
  expect(problems.length === 0, "no page errors, failed requests or outside requests, got " + problems.join("; "));
  console.log(JSON.stringify({ ok: true, first, thumbnails: widths.length, screenshot }));
} catch (e) {
  const state = await page.evaluate(() => ({
    status: document.getElementById("status")?.textContent,
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
