// The duty officer's view of one visit: both sides live, the controls, and the face
// checks as they happen (the identity gate's progress and decision, unexpected-face
// alerts, presence notices). Every text from the server goes in with textContent.
import { VisitClient, appendChat, formatRemaining } from "./visit-client.js";

const root = document.querySelector("[data-watch]");
const $ = (sel) => root.querySelector(sel);
const visitId = root.dataset.visitId;
const client = new VisitClient({ role: "officer", visit_id: visitId }, { send: false });
window.__visit = client; // for the end-to-end tests: getStats() on client.pc
// Receive order is fixed by the protocol: relative audio+video, then kiosk audio+video.
const RECEIVE = ["audio", "video", "audio", "video"];
const SENDERS = { relative: "家属", kiosk: "被会见人" };
const SIDES = { relative: "家属端", kiosk: "监室端" };
const STEPS = {
  face: "未检测到人脸",
  card: "等待出示身份证",
  hold_still: "比对中",
  mismatch: "人证不符",
  turn_left: "活体检测：向左转头",
  turn_right: "活体检测：向右转头",
  turn_back: "活体检测：转回正面",
  too_fast: "转头过快，重试",
  matched: "已通过",
  passed: "已通过",
  failed: "未通过",
};
const PRESENCE = { absent: "离开画面或无法核验", mismatch: "与登记人员不符", back: "已回到画面" };
const SNAPSHOT_REF = /^[0-9A-Za-z_-]{1,64}\/[0-9a-f]{16}\.jpg$/;
let remainingAt = null;

function show(selector, text) {
  const el = $(selector);
  if (el) el.textContent = text;
}

/** A DOM element with text children only (never HTML from a frame). */
function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const child of children) {
    if (child === null || child === undefined || child === "") continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function distance(value) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(3) : "—";
}

function distances(values) {
  return Array.isArray(values) && values.length ? values.map(distance).join(" / ") : "—";
}

/** A frame's instant as the facility's wall-clock time (the ledger's, not the browser's). */
function timeOf(at) {
  const when = at ? new Date(at) : new Date();
  if (Number.isNaN(when.getTime())) return "";
  try {
    return when.toLocaleTimeString("zh-CN", { hour12: false, timeZone: root.dataset.timeZone });
  } catch {
    return when.toLocaleTimeString("zh-CN", { hour12: false }); // an unknown zone name
  }
}

/** The picture for a frame: the data: URL it carries, else the stored snapshot's URL. */
function snapshotSrc(frame) {
  if (typeof frame.snapshot === "string" && frame.snapshot.startsWith("data:image/jpeg;base64,")) {
    return frame.snapshot;
  }
  if (typeof frame.snapshot_ref === "string" && SNAPSHOT_REF.test(frame.snapshot_ref)) {
    return `/console/visits/${encodeURIComponent(visitId)}/snapshots/${frame.snapshot_ref.split("/")[1]}`;
  }
  return null;
}

function snapshotImage(frame, alt) {
  const src = snapshotSrc(frame);
  if (!src) return null;
  const img = el("img", "snapshot");
  img.src = src;
  img.alt = alt;
  return img;
}

// -- people: the rows rendered by the server, and any the gate names later --
const names = new Map();
for (const row of root.querySelectorAll("[data-person]")) {
  names.set(row.dataset.person, row.querySelector("[data-name]").textContent);
}

function personRow(person, name) {
  let row = root.querySelector(`[data-identity-people] tr[data-person="${CSS.escape(person)}"]`);
  if (!row) {
    row = el("tr");
    row.dataset.person = person;
    const head = el("th", null, name || person);
    head.scope = "row";
    head.dataset.name = "";
    const progress = el("td", null, "等待核验");
    progress.dataset.progress = "";
    const step = el("td", null, "—");
    step.dataset.step = "";
    row.append(head, progress, step);
    $("[data-identity-people]").append(row);
  }
  if (name) names.set(person, name);
  return row;
}

function nameOf(person, fallback) {
  return fallback || names.get(person) || person || "";
}

// -- the identity gate --
function onIdentity(frame) {
  show("[data-identity-message]", frame.message || "");
  const panel = $("[data-identity-panel]");
  panel.dataset.gateStep = frame.step || "";
  if (frame.person) {
    const row = personRow(frame.person, frame.person_name);
    row.classList.toggle("passed", frame.step === "matched" || frame.step === "passed");
    row.classList.toggle("bad", frame.step === "mismatch" || frame.step === "too_fast");
    let progress;
    if (frame.step === "matched" || frame.step === "passed") {
      progress = "已通过";
    } else if (frame.step === "failed") {
      progress = "未通过";
    } else if (frame.challenge && typeof frame.progress === "number") {
      progress = `转头 ${Math.round(Math.max(0, Math.min(1, frame.progress)) * 100)}%`;
    } else {
      progress = `已确认 ${frame.votes ?? 0}/${frame.needed ?? "?"} 次`;
    }
    row.querySelector("[data-progress]").textContent = progress;
    row.querySelector("[data-step]").textContent = STEPS[frame.step] || frame.step || "—";
  }
  if (frame.step === "passed") {
    for (const row of root.querySelectorAll("[data-identity-people] tr")) {
      row.classList.add("passed");
      row.querySelector("[data-progress]").textContent = "已通过";
      row.querySelector("[data-step]").textContent = STEPS.passed;
    }
  }
  const parts = [];
  if (typeof frame.people === "number" && frame.people > 0) {
    parts.push(`已通过 ${frame.passed_people ?? 0}/${frame.people} 人`);
  }
  if (typeof frame.attempts_left === "number") parts.push(`剩余重试 ${frame.attempts_left} 次`);
  if (frame.step === "failed") parts.push("自动核验未通过：请人工核验后准许，或结束会见");
  show("[data-identity-summary]", parts.join("；"));
}

function onGate(frame) {
  const box = $("[data-gate-decision]");
  box.hidden = false;
  box.classList.toggle("passed", !!frame.passed);
  box.classList.toggle("failed", !frame.passed);
  show("[data-gate-title]", frame.message || (frame.passed ? "身份核验通过" : "身份核验未通过"));
  const img = $("[data-gate-snapshot]");
  const src = snapshotSrc(frame);
  img.hidden = !src;
  if (src) img.src = src;
  const list = $("[data-gate-persons]");
  list.replaceChildren();
  for (const p of Array.isArray(frame.persons) ? frame.persons : []) {
    const name = nameOf(p.person, p.name);
    const item = el("li", p.passed ? "passed" : "failed",
      el("b", null, `${name}：${p.passed ? "通过" : "未通过"}`));
    let live = p.live, card = p.card;
    if (live === undefined && Array.isArray(p.frames)) {
      live = p.frames.map((f) => f.live);
      card = p.frames.map((f) => f.card);
    }
    item.append(el("p", "data", `现场人脸距离 ${distances(live)}`));
    item.append(el("p", "data", `证件人像距离 ${distances(card)}`));
    if (p.liveness) {
      const l = p.liveness;
      const way = { left: "向左", right: "向右" }[l.direction] || "—";
      item.append(el("p", "data",
        `转头${way}${l.passed ? "通过" : "未通过"}（基准 ${distance(l.baseline)}，峰值 ${distance(l.peak)}，${l.samples ?? 0} 帧）`));
    }
    list.append(item);
  }
}

// -- during the visit --
function onAlert(frame) {
  $("[data-alerts-empty]").hidden = true;
  const entry = el("article", frame.auto_cut ? "face-alert auto-cut" : "face-alert");
  const text = el("div", null,
    el("p", null, el("time", null, timeOf(frame.at)), " · ", el("b", null, SIDES[frame.side] || frame.side), " · ", frame.message || "画面中出现未经核准的人员"));
  if (frame.auto_cut) text.append(el("p", "auto-cut-note", "已自动中止"));
  text.append(el("p", "data", `与最接近的会见人距离 ${distance(frame.distance)}`));
  if (frame.distances && typeof frame.distances === "object") {
    const each = Object.entries(frame.distances).map(([p, d]) => `${nameOf(p)} ${distance(d)}`);
    if (each.length) text.append(el("p", "data", each.join("；")));
  }
  if (frame.votes !== undefined && frame.window !== undefined) {
    text.append(el("p", "data", `${frame.votes}/${frame.window} 次采样一致`));
  }
  const img = snapshotImage(frame, `${SIDES[frame.side] || ""}告警抓拍（红框为陌生人脸）`);
  if (img) entry.append(img);
  entry.append(text);
  $("[data-alerts]").prepend(entry); // newest first
}

function onPresence(frame) {
  const who = nameOf(frame.person, frame.name);
  const item = el("li", frame.status === "back" ? "presence back" : "presence away",
    el("time", null, timeOf(frame.at)), " · ", SIDES[frame.side] || frame.side || "", " ",
    el("b", null, who), "：", frame.message || PRESENCE[frame.status] || frame.status);
  if (typeof frame.seconds === "number" && frame.seconds > 0 && frame.status !== "back") {
    item.append(`（约 ${Math.round(frame.seconds)} 秒）`);
  }
  const img = snapshotImage(frame, `${who}在场核验抓拍`);
  if (img) item.append(img);
  $("[data-presence-list]").prepend(item);
}

// -- the visit's state --
function setState(frame) {
  if (frame.state_label) show("[data-state]", frame.state_label);
  if (typeof frame.remaining_seconds === "number" && frame.state === "live") {
    remainingAt = { seconds: frame.remaining_seconds, at: performance.now() };
  }
  for (const button of root.querySelectorAll("[data-when]")) {
    button.disabled = !button.dataset.when.split(" ").includes(frame.state);
  }
  const panel = $("[data-identity-panel]");
  panel.dataset.visitState = frame.state || "";
  if (frame.state === "identity_check" && !panel.dataset.gateStep) {
    show("[data-identity-message]", "家属正在进行身份核验");
  } else if (frame.state === "live") {
    show("[data-identity-message]", "身份核验已完成，会见进行中");
    for (const cell of root.querySelectorAll("[data-identity-people] [data-progress]")) {
      if (cell.textContent === "等待核验") cell.textContent = "—"; // decided without the gate
    }
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
client.addEventListener("identity", (e) => onIdentity(e.detail));
client.addEventListener("gate", (e) => onGate(e.detail));
client.addEventListener("alert", (e) => onAlert(e.detail));
client.addEventListener("reverify", (e) => onPresence(e.detail));
client.addEventListener("ended", (e) => {
  setState(e.detail); // the ended frame carries the state fields: the label reads 已结束
  show("[data-ended]", e.detail.note ? `${e.detail.message || "会见已结束"}：${e.detail.note}` : e.detail.message || "会见已结束");
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
  } else if (action === "admit") {
    // The override is the officer's word in the ledger: it needs a reason.
    const input = $("[data-admit-reason]");
    const reason = input.value.trim();
    if (!reason) {
      show("[data-error]", "请填写人工核验的理由");
      input.focus();
      return;
    }
    act("admit", { reason });
  } else if (action === "deny") {
    const reason = $("[data-deny-reason]").value.trim();
    if (confirm("确定身份核验未通过，并结束本次会见？")) act("deny", reason ? { reason } : {});
  } else if (action === "cut") {
    const reason = $("[data-cut-reason]").value.trim() || "民警中止会见";
    if (confirm("确定立即中止本次会见？")) act("cut", { reason });
  } else {
    act(action);
  }
});

client.connect();
