// The relative's and the kiosk's visit page: camera preview, the call with the
// server, countdown, chat, warnings, mute and the end of the visit.
import { VisitClient, appendChat, cameraHelp, formatRemaining, micLevel } from "./visit-client.js";

const root = document.querySelector("[data-visit-room]");
const $ = (sel) => root.querySelector(sel);
const role = root.dataset.role;
const hello =
  role === "kiosk"
    ? { role, device_token: root.dataset.deviceToken, visit_id: root.dataset.visitId }
    : { role, token: root.dataset.token, code: root.dataset.code };
const client = new VisitClient(hello, { send: true });
window.__visit = client; // for the end-to-end tests: getStats() on client.pc
const MEDIA_STATES = new Set(["connecting", "identity_check", "live"]);
const SENDERS = { relative: "家属", kiosk: "被会见人" };
let remainingAt = null;
let stopMeter = () => {};

function show(selector, text) {
  const el = $(selector);
  if (el) el.textContent = text;
}

function setState(frame) {
  if (frame.state_label) show("[data-state]", frame.state_label);
  // "Waiting for the officer" only while waiting.
  const note = $("[data-lobby-note]");
  if (note && frame.state) note.hidden = !["scheduled", "lobby"].includes(frame.state);
  if (typeof frame.remaining_seconds === "number" && frame.state === "live") {
    remainingAt = { seconds: frame.remaining_seconds, at: performance.now() };
  }
  if (MEDIA_STATES.has(frame.state) && !client.pc && client.localStream) {
    client.call().catch((e) => show("[data-error]", e.message || String(e)));
  }
}

setInterval(() => {
  if (!remainingAt) return;
  const left = remainingAt.seconds - (performance.now() - remainingAt.at) / 1000;
  show("[data-remaining]", formatRemaining(left));
}, 500);

client.addEventListener("welcome", (e) => setState(e.detail.visit || e.detail));
client.addEventListener("state", (e) => setState(e.detail));
client.addEventListener("tick", (e) => {
  remainingAt = { seconds: e.detail.remaining_seconds, at: performance.now() };
});
client.addEventListener("track", (e) => {
  const video = $("[data-remote]");
  if (e.detail.track.kind === "video" || !video.srcObject) {
    video.srcObject = e.detail.streams[0] || new MediaStream([e.detail.track]);
  }
});
client.addEventListener("chat", (e) => appendChat($("[data-chat-list]"), SENDERS[e.detail.sender] || e.detail.sender, e.detail.text));
client.addEventListener("warning", (e) => show("[data-warning]", e.detail.text || e.detail.message));
client.addEventListener("time_warning", (e) => show("[data-warning]", e.detail.message));
client.addEventListener("muted", (e) => {
  if (e.detail.side === role) show("[data-muted]", e.detail.muted ? "您已被民警静音" : "");
});
client.addEventListener("ended", (e) => {
  setState(e.detail); // the ended frame carries the state fields: the label reads 已结束
  const why = e.detail.message || e.detail.reason_label || "会见已结束";
  show("[data-ended]", e.detail.note ? `${why}：${e.detail.note}` : why);
  // Not "ended": site.css styles .ended as the red end message, which coloured the whole room.
  root.classList.add("visit-over");
  remainingAt = null;
  stopMeter();
  if (client.localStream) client.localStream.getTracks().forEach((t) => t.stop());
});
client.addEventListener("replaced", () => show("[data-ended]", "本会见已在其他设备或窗口打开"));
client.addEventListener("error", (e) => show("[data-error]", e.detail.message || ""));

$("[data-chat-form]")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("[data-chat-input]");
  const text = input.value.trim();
  if (!text) return;
  try {
    await client.send("chat", { text });
    input.value = "";
  } catch (frame) {
    show("[data-error]", frame.message);
  }
});

async function start() {
  try {
    const stream = await client.startMedia();
    $("[data-local]").srcObject = stream;
    stopMeter = micLevel(stream, $("[data-mic]"));
  } catch (error) {
    show("[data-camera-help]", cameraHelp(error));
    return;
  }
  client.connect();
}

start();
