// The chat page as a person uses it, in Debian's headless Chromium: type a message, see the
// reply, tap a quick reply, see the next reply, tap a button, see cards; then switch to
// Instagram and talk to the bot as an Instagram user; then comment on the page's post and see the
// private reply; then ask for a reminder and see it arrive; save a screenshot of each.
// Usage: node chat_test.mjs CHAT_URL SCREENSHOT_PATH
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
let failed = 0;
// Whether `condition` (async) holds within `ms`, asked every 100 ms.
const eventually = async (condition, ms = 20000) => {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((resolve) => setTimeout(resolve, 100))) {
    if (await condition()) return true;
  }
  return false;
};
const check = (ok, what) => {
  console.log((ok ? "ok   " : "FAIL ") + what);
  if (!ok) failed++;
};
try {
  const page = await browser.newPage({ viewport: { width: 1180, height: 720 } });
  page.setDefaultTimeout(20000);
  await page.goto(url);
  // The page renders after its first fetches: wait for it rather than look at once.
  check(await page.waitForSelector("#get-started").then(() => true, () => false),
        "a new conversation offers Get Started");

  await page.fill("#text", "hello");
  await page.press("#text", "Enter");
  await page.waitForSelector(".msg.user >> text=hello");
  const greeting = await page.waitForSelector(".msg.bot");
  check(/hello|hi there/i.test(await greeting.textContent()), "the bot greets back");
  await page.waitForSelector(".chip >> text=Help");
  check((await page.$$(".chip")).length >= 3, "its quick replies show as chips");

  await page.click(".chip >> text=Help");
  const help = await page.waitForSelector(".msg.bot.template");
  check((await help.textContent()).includes("I can chat"), "tapping a chip gets the next reply (a button template)");

  await page.click(".template .button >> text=Show kittens");
  await page.waitForSelector(".cards .card >> text=Mittens");
  check(true, "a postback button brings a carousel of cards");

  // The panel's numbers come from the services' /metrics. Not a particular length: the
  // responder trims handled entries every 10 s, so the inbound stream's length may be anything
  // from 0 to the events so far when the panel reads it.
  check(await page.waitForFunction(() => ["in-length", "in-lag", "out-length", "dead"].every(
          (id) => /^[0-9]+$/.test(document.getElementById(id).textContent)))
          .then(() => true, () => false),
        "the side panel shows live queue depth");

  // The person asks for a human: the bot hands the conversation to the Page Inbox, where a
  // person answers as the page; the bot stays quiet until the person gives the thread back.
  const botReplies = async () =>
    page.evaluate(async () => (await (await fetch("/_emulator/messages?psid=web-you")).json())
      .filter((m) => m.message && !m.app_id).length);
  await page.fill("#text", "I want a human");
  await page.press("#text", "Enter");
  check(await page.waitForSelector(".msg.bot >> text=fetching a human").then(() => true, () => false),
        "asking for a human gets the bot's handover message");
  check(await page.waitForSelector("#inbox-owner >> text=Page Inbox has this conversation")
          .then(() => true, () => false), "the Page Inbox has the conversation now");
  await page.fill("#inbox-text", "Hi, Sam from support here.");
  await page.press("#inbox-text", "Enter");
  check(await page.waitForSelector(".msg.inbox >> text=Sam from support").then(() => true, () => false),
        "a person's reply from the Page Inbox shows in the thread");
  const before = await botReplies();
  // Each step waits for the emulator's answer, which comes once ingress has the event: the
  // page's fetches run concurrently, and a pass_thread_control that reached ingress before
  // "thanks Sam" would hand that message to the bot (or "hello" to the person).
  const accepted = (path) => page.waitForResponse((response) => new URL(response.url()).pathname === path);
  const thanked = accepted("/_emulator/say");
  await page.fill("#text", "thanks Sam");
  await page.press("#text", "Enter");
  check((await thanked).ok(), "ingress took \"thanks Sam\"");
  const passed = accepted("/_emulator/inbox/pass");
  await page.click("#inbox-pass");
  check((await passed).ok(), "ingress took the pass_thread_control");
  check(await page.waitForSelector("#inbox-owner >> text=routes this conversation to the bot")
          .then(() => true, () => false), "the person gave the conversation back to the bot");
  await page.fill("#text", "hello");
  await page.press("#text", "Enter");
  // Polled from here: page.waitForFunction takes the Promise an async predicate returns for a
  // truthy answer, so it would not wait for the reply at all.
  check(await eventually(async () => (await botReplies()) > before), "the bot answers \"hello\"");
  // In order: "thanks Sam" came while the person had the thread, "hello" after it came back.
  check((await botReplies()) === before + 1, "the bot stayed quiet while the person had the thread, " +
        "and answered again once it was given back");
  const lastReply = await page.evaluate(async () => (await (await fetch("/_emulator/messages?psid=web-you")).json())
    .filter((m) => m.message && !m.app_id).pop().message.text || "");
  check(/hello|hi there/i.test(lastReply), "the bot's new reply answers \"hello\" (got \"" + lastReply + "\")");

  await page.screenshot({ path: screenshot });
  console.log("screenshot: " + screenshot);

  // The same person on Instagram: another thread, with the Instagram account.
  await page.click("#on-instagram");
  check(await page.waitForSelector(".hint").then(() => true, () => false),
        "switched to Instagram, the thread starts empty (no Get Started there)");
  await page.fill("#text", "hello");
  await page.press("#text", "Enter");
  const answer = await page.waitForSelector(".msg.bot");
  check(/hello|hi there/i.test(await answer.textContent()), "the bot answers the Instagram user");
  const sent = await page.evaluate(async () => {
    const config = await (await fetch("/_emulator/config")).json();
    const messages = await (await fetch("/_emulator/messages?psid=ig-web-you")).json();
    return { account: config.instagram, pages: messages.filter((m) => m.message).map((m) => m.page) };
  });
  check(sent.pages.length > 0 && sent.pages.every((p) => p === sent.account),
        "the reply went out from the Instagram account (" + sent.account + ")");
  await page.click(".chip >> text=Help");
  check((await page.waitForSelector(".msg.bot.template").then((e) => e.textContent())).includes("I can chat"),
        "quick replies work on Instagram too");
  const instagramShot = screenshot.replace(/\.png$/, "-instagram.png");
  await page.screenshot({ path: instagramShot });
  console.log("screenshot: " + instagramShot);

  await page.click("#on-messenger");
  check(await page.waitForSelector(".cards .card >> text=Mittens").then(() => true, () => false),
        "back on Messenger, the first thread is still there");

  // Comment → DM: a comment under the page's post gets one private reply in the person's inbox
  // and a public reply under the comment.
  await page.fill("#comment-text", "how much is the adoption price?");
  await page.press("#comment-text", "Enter");
  check(await page.waitForSelector("#comments >> text=how much is the adoption price?").then(() => true, () => false),
        "the comment shows under the post");
  const privateReply = await page.waitForSelector(".msg.bot:has(.private)").then((e) => e.textContent(), () => "");
  check(/50 EUR/.test(privateReply), "its private reply arrives in the chat (got \"" + privateReply + "\")");
  check(await page.waitForSelector("#comments .reply >> text=Sent you a message").then(() => true, () => false),
        "the page's public reply shows under the comment");
  const commentShot = screenshot.replace(/\.png$/, "-comment.png");
  await page.screenshot({ path: commentShot });
  console.log("screenshot: " + commentShot);

  // A reminder: "remind me" sets one (the demo rules: 20 seconds); it arrives in the chat by
  // itself, with nothing typed meanwhile (writing would cancel it).
  await page.fill("#text", "remind me");
  await page.press("#text", "Enter");
  check(await page.waitForSelector(".msg.bot >> text=nudge you in 20 seconds").then(() => true, () => false),
        "the bot says it will remind");
  check(await page.waitForSelector(".msg.bot >> text=Here is your reminder", { timeout: 60000 })
          .then(() => true, () => false),
        "the reminder arrives in the chat by itself");
  const reminderShot = screenshot.replace(/\.png$/, "-reminder.png");
  await page.screenshot({ path: reminderShot });
  console.log("screenshot: " + reminderShot);
} catch (error) {
  console.log("FAIL " + error.message);
  failed++;
} finally {
  await browser.close();
}
console.log(`${failed === 0 ? 1 : 0} passed, ${failed === 0 ? 0 : 1} failed`);
process.exit(failed === 0 ? 0 : 1);
