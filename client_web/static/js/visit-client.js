// VisitGate live-visit client: the WebSocket signalling (docs/protocol.md) and
// one RTCPeerConnection with the server. Used by the relative, kiosk and
// officer pages; no build step, an ES module.

export const PROTOCOL_VERSION = 1;

export class VisitClient extends EventTarget {
  /**
   * @param {object} hello  the hello frame minus type/version (role, token, code, ...)
   * @param {{send: boolean}} media  whether this side sends camera and microphone
   */
  constructor(hello, media) {
    super();
    this.hello = hello;
    this.media = media;
    this.nextId = 1;
    this.pending = new Map();
    this.pc = null;
    this.iceServers = [];
    this.localStream = null;
    this.closedByServer = false;
    this.retries = 0;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws/visit`;
  }

  connect() {
    this.ws = new WebSocket(this.url());
    this.ws.addEventListener("open", () => {
      this.retries = 0;
      this.ws.send(JSON.stringify({ type: "hello", version: PROTOCOL_VERSION, ...this.hello }));
    });
    this.ws.addEventListener("message", (event) => this.onFrame(JSON.parse(event.data)));
    this.ws.addEventListener("close", () => {
      this.emit("disconnected", {});
      if (!this.closedByServer && this.retries < 5) {
        // A network switch or a server restart: rejoin; the visit clock is the server's.
        this.retries += 1;
        setTimeout(() => this.connect(), 1000 * this.retries);
      }
    });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  request(type, body = {}) {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ id, type, ...body }));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  async onFrame(frame) {
    if (frame.id && this.pending.has(frame.id)) {
      const { resolve, reject } = this.pending.get(frame.id);
      this.pending.delete(frame.id);
      if (frame.type === "error") reject(frame); else resolve(frame);
      if (frame.type === "error") this.emit("error", frame);
      return;
    }
    switch (frame.type) {
      case "welcome":
        this.iceServers = frame.ice_servers || [];
        this.emit("welcome", frame);
        break;
      case "replaced":
      case "ended":
        this.closedByServer = true;
        this.closePeer();
        this.emit(frame.type, frame);
        break;
      case "error":
        if (frame.fatal) this.closedByServer = true;
        this.emit("error", frame);
        break;
      case "ping":
        this.ws.send(JSON.stringify({ type: "pong" }));
        break;
      default:
        this.emit(frame.type, frame);
    }
  }

  async startMedia(constraints = { video: { width: 640, height: 480 }, audio: true }) {
    if (!this.media.send || this.localStream) return this.localStream;
    this.localStream = await navigator.mediaDevices.getUserMedia(constraints);
    return this.localStream;
  }

  /** Offer to the server; `recv` lists the kinds to receive per remote side. */
  async call(recvTransceivers = ["audio", "video"]) {
    this.closePeer();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    if (this.localStream) {
      for (const track of this.localStream.getTracks()) {
        pc.addTransceiver(track, { direction: "sendrecv", streams: [this.localStream] });
      }
    } else {
      for (const kind of recvTransceivers) pc.addTransceiver(kind, { direction: "recvonly" });
    }
    pc.addEventListener("track", (event) => this.emit("track", event));
    pc.addEventListener("connectionstatechange", () => {
      this.emit("connection", { state: pc.connectionState });
      if (pc.connectionState === "failed" && !this.closedByServer) {
        this.call(recvTransceivers).catch((e) => this.emit("error", e));
      }
    });
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIce(pc);
    const answer = await this.request("offer", { sdp: pc.localDescription.sdp });
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    return pc;
  }

  closePeer() {
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
  }

  send(type, body = {}) {
    return this.request(type, body);
  }
}

function waitForIce(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000);
  });
}

export function formatRemaining(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60);
  return `${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

/** Why the camera could not start, in words a relative can act on. */
export function cameraHelp(error) {
  const ua = navigator.userAgent;
  const wechat = /MicroMessenger/i.test(ua);
  const ios = /iPhone|iPad/i.test(ua);
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return wechat
      ? "微信内置浏览器无法使用摄像头，请点击右上角“…”，选择“在浏览器打开”。"
      : "当前浏览器不支持视频通话，请使用最新版的 Chrome、Safari 或系统浏览器，并通过 https 链接打开。";
  }
  if (error && (error.name === "NotAllowedError" || error.name === "SecurityError")) {
    if (ios) return "摄像头或麦克风权限被拒绝：请打开“设置 → Safari → 摄像头/麦克风”，选择“允许”，然后刷新本页。";
    if (wechat) return "请在微信中允许使用摄像头和麦克风，或点击右上角“…”选择“在浏览器打开”。";
    return "摄像头或麦克风权限被拒绝：请点击地址栏左侧的锁形图标，允许使用摄像头和麦克风，然后刷新本页。";
  }
  if (error && (error.name === "NotFoundError" || error.name === "OverconstrainedError")) {
    return "未找到摄像头或麦克风，请检查设备连接后刷新本页。";
  }
  if (error && error.name === "NotReadableError") {
    return "摄像头正被其他应用占用，请关闭其他使用摄像头的应用后刷新本页。";
  }
  return "无法打开摄像头，请刷新本页重试。";
}

/** A microphone level meter drawn into a <meter> element. */
export function micLevel(stream, meter) {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx || !stream.getAudioTracks().length) return () => {};
  const ctx = new Ctx();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const data = new Uint8Array(analyser.fftSize);
  let running = true;
  const tick = () => {
    if (!running) return;
    analyser.getByteTimeDomainData(data);
    let peak = 0;
    for (const v of data) peak = Math.max(peak, Math.abs(v - 128));
    meter.value = peak / 128;
    requestAnimationFrame(tick);
  };
  tick();
  return () => { running = false; ctx.close(); };
}

export function appendChat(list, who, text) {
  const item = document.createElement("li");
  const name = document.createElement("b");
  name.textContent = who + "：";
  const body = document.createElement("span");
  body.textContent = text; // never innerHTML: chat is text
  item.append(name, body);
  list.append(item);
  list.scrollTop = list.scrollHeight;
}
