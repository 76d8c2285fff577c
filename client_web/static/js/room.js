// The relative's and the kiosk's visit page: camera preview, the call with the
// server, the identity check's guidance (relative) or notice (kiosk), countdown,
// chat, warnings, mute and the end of the visit.
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

// -- the identity check (relative): what to do now, shown over the camera preview --
// The preview is mirrored (a selfie view), so "turn left" (the person's own left)
// is a movement towards the left of the screen: the arrow points the same way.
const ARROWS = { left: "←", right: "→" };
const STILL_CHECKING = new Set(["face", "card", "hold_still", "mismatch", "matched"]);
let attemptsShown = false;

function setText(el, text) {
  // Only when it changed: a screen reader would read the same words every second.
  if (el && el.textContent !== text) el.textContent = text;
}

function showGate(checking) {
  const gate = $("[data-gate]");
  const guide = $("[data-gate-guide]");
  // Only the relative's preview grows for the check; the kiosk keeps its usual layout.
  root.classList.toggle("checking", checking && role === "relative");
  if (gate) gate.hidden = !checking;
  if (guide && !checking) guide.hidden = true;
  if (guide && checking && !gate.dataset.step) guide.hidden = false;
  const kioskNote = $("[data-kiosk-gate]");
  if (kioskNote) kioskNote.hidden = !checking;
}

function onIdentity(frame) {
  const gate = $("[data-gate]");
  const guide = $("[data-gate-guide]");
  if (!gate || !guide) return;
  const step = frame.step || "card";
  gate.dataset.step = step;
  guide.dataset.step = step;
  guide.dataset.challenge = frame.challenge || "";
  const done = step === "passed" || step === "failed";
  guide.hidden = done;
  setText($("[data-gate-message]"), frame.message || "");

  const person = $("[data-gate-person]");
  const many = typeof frame.people === "number" && frame.people > 1;
  if (frame.person_name && !done) {
    const place = many ? `（第${Math.min((frame.passed_people || 0) + 1, frame.people)}位，共${frame.people}位）` : "";
    setText(person, `正在核验：${frame.person_name}${place}`);
    person.hidden = false;
  } else if (many && !done) {
    setText(person, `已通过 ${frame.passed_people || 0} 位，共 ${frame.people} 位`);
    person.hidden = false;
  } else {
    person.hidden = true;
  }

  const votes = $("[data-gate-votes]");
  const needed = typeof frame.needed === "number" ? frame.needed : 0;
  const counting = needed > 0 && STILL_CHECKING.has(step);
  votes.hidden = !counting;
  if (counting) {
    const got = Math.min(frame.votes || 0, needed);
    const dots = $("[data-gate-dots]");
    if (dots.children.length !== needed || dots.dataset.got !== String(got)) {
      dots.replaceChildren(...Array.from({ length: needed }, (_, i) => {
        const dot = document.createElement("span");
        dot.className = i < got ? "dot done" : "dot";
        return dot;
      }));
      dots.dataset.got = String(got);
    }
    setText($("[data-gate-votes-text]"), `已确认 ${got}/${needed}`);
  }

  const direction = frame.challenge === "left" || step === "turn_left" ? "left"
    : frame.challenge === "right" || step === "turn_right" ? "right" : "";
  guide.dataset.direction = direction;
  setText($("[data-guide-arrow]"), ARROWS[direction] || "");
  const progress = $("[data-turn-progress]");
  progress.value = typeof frame.progress === "number" ? Math.max(0, Math.min(1, frame.progress)) : 0;

  const attempts = $("[data-gate-attempts]");
  if (step === "mismatch" || step === "too_fast") attemptsShown = true;
  const showAttempts = attemptsShown && typeof frame.attempts_left === "number" && !done;
  attempts.hidden = !showAttempts;
  if (showAttempts) setText(attempts, `还可以再试 ${frame.attempts_left} 次`);
  $("[data-gate-wait]").hidden = step !== "failed";
}

function setState(frame) {
  if (frame.state_label) show("[data-state]", frame.state_label);
  // "Waiting for the officer" only while waiting.
  const note = $("[data-lobby-note]");
  if (note && frame.state) note.hidden = !["scheduled", "lobby"].includes(frame.state);
  if (frame.state) showGate(frame.state === "identity_check");
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
client.addEventListener("identity", (e) => onIdentity(e.detail));
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
