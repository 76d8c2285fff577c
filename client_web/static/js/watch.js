// The duty officer's view of one visit: both sides live, and the controls.
import { VisitClient, appendChat, formatRemaining } from "./visit-client.js";

const root = document.querySelector("[data-watch]");
const $ = (sel) => root.querySelector(sel);
const client = new VisitClient({ role: "officer", visit_id: root.dataset.visitId }, { send: false });
window.__visit = client; // for the end-to-end tests: getStats() on client.pc
// Receive order is fixed by the protocol: relative audio+video, then kiosk audio+video.
const RECEIVE = ["audio", "video", "audio", "video"];
const SENDERS = { relative: "家属", kiosk: "被会见人" };
let remainingAt = null;

function show(selector, text) {
  const el = $(selector);
  if (el) el.textContent = text;
}

function setState(frame) {
  if (frame.state_label) show("[data-state]", frame.state_label);
  if (typeof frame.remaining_seconds === "number" && frame.state === "live") {
    remainingAt = { seconds: frame.remaining_seconds, at: performance.now() };
  }
  for (const button of root.querySelectorAll("[data-when]")) {
    button.disabled = !button.dataset.when.split(" ").includes(frame.state);
  }
  if (["connecting", "identity_check", "live"].includes(frame.state) && !client.pc) {
    client.call(RECEIVE).catch((e) => show("[data-error]", e.message || String(e)));
  }
}

setInterval(() => {
  if (!remainingAt) return;
  show("[data-remaining]", formatRemaining(remainingAt.seconds - (performance.now() - remainingAt.at) / 1000));
}, 500);

client.addEventListener("welcome", (e) => setState(e.detail.visit || e.detail));
client.addEventListener("state", (e) => setState(e.detail));
client.addEventListener("tick", (e) => {
  remainingAt = { seconds: e.detail.remaining_seconds, at: performance.now() };
});
client.addEventListener("track", (e) => {
  const index = client.pc.getTransceivers().indexOf(e.detail.transceiver);
  const video = $(index < 2 ? "[data-relative]" : "[data-kiosk]");
  const stream = video.srcObject || new MediaStream();
  stream.addTrack(e.detail.track);
  video.srcObject = stream;
});
client.addEventListener("chat", (e) => appendChat($("[data-chat-list]"), SENDERS[e.detail.sender] || e.detail.sender, e.detail.text));
client.addEventListener("warning", (e) => appendChat($("[data-chat-list]"), "民警提醒", e.detail.text));
client.addEventListener("muted", (e) => show(`[data-muted-${e.detail.side}]`, e.detail.muted ? "已静音" : ""));
client.addEventListener("ended", (e) => {
  setState(e.detail); // the ended frame carries the state fields: the label reads 已结束
  show("[data-ended]", e.detail.message || "会见已结束");
  remainingAt = null;
  for (const button of root.querySelectorAll("button")) button.disabled = true;
});
client.addEventListener("error", (e) => show("[data-error]", e.detail.message || ""));

async function act(type, body = {}) {
  try {
    show("[data-error]", "");
    await client.send(type, body);
  } catch (frame) {
    show("[data-error]", frame.message);
  }
}

// Videos start muted (browsers only autoplay muted media); listening is the officer's click.
root.querySelector("[data-listen]")?.addEventListener("click", (event) => {
  const button = event.currentTarget;
  const listening = button.getAttribute("aria-pressed") !== "true";
  button.setAttribute("aria-pressed", String(listening));
  button.textContent = listening ? "关闭监听" : "开启监听";
  for (const video of root.querySelectorAll("video")) video.muted = !listening;
});

root.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const action = button.dataset.action;
  if (action === "warn") {
    const text = $("[data-warn-text]").value.trim();
    if (text) act("warn", { text });
  } else if (action === "mute") {
    const side = button.dataset.side;
    const muted = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(muted));
    act("mute", { side, muted });
  } else if (action === "cut") {
    const reason = $("[data-cut-reason]").value.trim() || "民警中止会见";
    if (confirm("确定立即中止本次会见？")) act("cut", { reason });
  } else {
    act(action);
  }
});

client.connect();
