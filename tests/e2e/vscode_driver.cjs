// Drives VS Code (code-server in Debian's Chromium, through playwright-core) like a person:
// open a workspace file, wait for the CodeGeeX status item to say ready, type, wait for ghost
// text, take a screenshot, press Tab, save. Prints one JSON line with what it saw.
//
// Usage: node vscode_driver.cjs '<json>' with keys
//   playwright  path of the playwright-core package
//   url         code-server's URL with ?folder=...
//   file        the file name to open with Quick Open
//   type        the text to type at the end of the file ("\n" presses Enter)
//   line        optional: type at the end of this 1-based line instead (arrow keys, End)
//   screenshot  where to save the PNG
//   profile     a fresh Chromium user-data-dir
//   timeoutMs   how long to wait for the model and for ghost text
"use strict";

const args = JSON.parse(process.argv[2]);
const { chromium } = require(args.playwright);

const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// VS Code instantiates "Eventually" editor contributions at the latest 5000 ms after first render.
const EDITOR_SETTLE_MS = 5500;

function log(message) {
  process.stderr.write(`[driver ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
}

async function ghostText(page) {
  // First line: injected text in the cursor's view line; further lines: a view zone below it.
  return page.evaluate(() => {
    const clean = (s) => s.replace(/\u00a0/g, " ");
    const inline = [...document.querySelectorAll(".monaco-editor .ghost-text-decoration")].map((e) => clean(e.textContent));
    const block = [...document.querySelectorAll(".monaco-editor .ghost-text .view-line")].map((e) => clean(e.textContent));
    return { inline, block };
  });
}

async function main() {
  const context = await chromium.launchPersistentContext(args.profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const result = { ok: false };
  try {
    log(`open ${args.url}`);
    await page.goto(args.url, { waitUntil: "domcontentloaded" });
    await page.waitForSelector(".monaco-workbench", { timeout: 120000 });

    log("wait for the CodeGeeX status item");
    const status = page.locator('.statusbar-item[aria-label^="CodeGeeX"]').first();
    await status.waitFor({ timeout: 120000 });
    await page.waitForFunction(
      () => {
        const item = document.querySelector('.statusbar-item[aria-label^="CodeGeeX"]');
        const label = item?.getAttribute("aria-label") ?? "";
        return label === "CodeGeeX ready" || label === "CodeGeeX error" || label === "CodeGeeX stopped";
      },
      null,
      { timeout: args.timeoutMs, polling: 250 },
    );
    result.status = await status.getAttribute("aria-label");
    log(`status: ${result.status}`);
    if (result.status !== "CodeGeeX ready") {
      throw new Error(`the extension reports ${result.status}`);
    }

    log(`quick open ${args.file}`);
    await page.keyboard.press("Control+P");
    await page.waitForSelector(".quick-input-widget input", { state: "visible" });
    await page.keyboard.type(args.file, { delay: 20 });
    await page.waitForSelector(".quick-input-list .monaco-list-row", { state: "visible" });
    await page.keyboard.press("Enter");
    const editor = page.locator(".editor-instance .monaco-editor").first();
    await editor.waitFor({ timeout: 30000 });
    const opened = Date.now();
    await page.waitForFunction(() => document.activeElement?.closest(".monaco-editor") != null, null, {
      timeout: 30000,
    });
    if (args.line) {
      log(`go to the end of line ${args.line}`);
      await page.keyboard.press("Control+Home");
      for (let i = 1; i < args.line; i++) {
        await page.keyboard.press("ArrowDown");
      }
      await page.keyboard.press("End");
    } else {
      await page.keyboard.press("Control+End");
    }

    // VS Code creates an editor's inline-suggestion controller lazily ("Eventually": when the
    // window is idle, at the latest 5 s after the editor's first render); keys typed before it
    // exists never ask for a suggestion. A person reads the file first; the driver waits that long.
    const settle = EDITOR_SETTLE_MS - (Date.now() - opened);
    if (settle > 0) {
      log(`let the editor settle for ${settle} ms`);
      await page.waitForTimeout(settle);
    }
    log(`type ${JSON.stringify(args.type)}`);
    await page.keyboard.type(args.type, { delay: 60 });
    await page.waitForFunction(
      () => [...document.querySelectorAll(".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text .view-line")]
        .some((e) => e.textContent.trim() !== ""),
      null,
      { timeout: args.timeoutMs, polling: 100 },
    );
    await page.waitForTimeout(300); // let the line finish rendering before the picture
    result.ghost = await ghostText(page);
    log(`ghost text: ${JSON.stringify(result.ghost)}`);
    await page.screenshot({ path: args.screenshot });

    log("accept with Tab, save");
    await page.keyboard.press("Tab");
    await page.waitForFunction(
      () => document.querySelectorAll(".monaco-editor .ghost-text-decoration").length === 0,
      null,
      { timeout: 10000 },
    ).catch(() => log("ghost text still visible after Tab (a new suggestion?)"));
    await page.keyboard.press("Control+S");
    await page.waitForFunction(
      () => document.querySelector(".tab.active.dirty") === null,
      null,
      { timeout: 15000 },
    );

    // Escape on a new suggestion dismisses it (codegeex/dismissed); the file stays as saved.
    // The model may have nothing to say at one spot: a new line, then a letter, then more.
    result.dismissShown = false;
    for (const keys of [["Enter"], ["r"], ["Space", "x"]]) {
      log(`press ${keys.join(" ")}, then Escape on the suggestion`);
      for (const key of keys) {
        await page.keyboard.press(key);
      }
      result.dismissShown = await page
        .waitForFunction(
          () => [...document.querySelectorAll(".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text .view-line")]
            .some((e) => e.textContent.trim() !== ""),
          null,
          { timeout: 8000, polling: 100 },
        )
        .then(() => true, () => false);
      if (result.dismissShown) {
        await page.keyboard.press("Escape");
        await page.waitForFunction(
          () => document.querySelectorAll(".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text").length === 0,
          null,
          { timeout: 10000 },
        );
        break;
      }
    }

    // A click on the status item toggles suggestions off and on.
    log("toggle with the status item");
    await status.click();
    await page.waitForSelector('.statusbar-item[aria-label="CodeGeeX disabled"]', { timeout: 15000 });
    await page.locator('.statusbar-item[aria-label^="CodeGeeX"]').first().click();
    await page.waitForSelector('.statusbar-item[aria-label="CodeGeeX ready"]', { timeout: 15000 });
    result.toggled = true;
    result.ok = true;
  } catch (error) {
    result.error = String(error && error.stack ? error.stack : error);
    await page.screenshot({ path: args.screenshot.replace(/\.png$/, "-failure.png") }).catch(() => {});
  } finally {
    await context.close();
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(error) }) + "\n");
  process.exitCode = 1;
});
