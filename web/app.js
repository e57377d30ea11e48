// Ask the Sphere: the browser client of sos-voice (docs/protocol.md), built to stand on a kiosk.
//
// Speaks the server's OpenAI-Realtime events over one WebSocket, with the binary fast path:
// microphone audio goes up as raw 16 kHz PCM16 frames, the answer's speech comes down as raw
// PCM16 at the voice's rate. Text (transcript, answer, catalog link, the dataset on the sphere)
// comes as JSON events.
//
// The visible state (body[data-state]) follows what the visitor hears, not the protocol: an
// answer is "speaking" until its last audio buffer has played, however early response.done
// arrived, and the captions light up the answer's words at the pace of the audio. After
// `idle` seconds without a visitor the page starts over (new session, attract screen).
//
// URL options: ?kiosk=1 (no operator controls, never asks for a token), &handsfree=1,
// &idle=SECONDS (0 = never reset; default 90), &audience=kids|general|educator, and
// #token=TOKEN (kept in sessionStorage, removed from the address bar).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    body: document.body,
    statusText: $("status-text"),
    talk: $("talk"),
    talkLabel: $("talk-label"),
    talkHelp: $("talk-help"),
    handsfree: $("handsfree"),
    stop: $("stop"),
    form: $("ask-form"),
    question: $("question"),
    error: $("error"),
    tokenForm: $("token-form"),
    token: $("token"),
    turns: $("turns"),
    attract: $("attract"),
    template: $("turn-template"),
    sphere: $("sphere"),
    sphereTitle: $("sphere-title"),
    sphereImg: $("sphere-img"),
    audience: document.querySelectorAll('input[name="audience"]'),
  };
  const params = new URLSearchParams(location.search);
  const AUDIENCES = ["kids", "general", "educator"];
  const options = {
    kiosk: params.get("kiosk") === "1",
    handsFree: params.get("handsfree") === "1",
    idleMs: 1000 * (params.has("idle") ? Math.max(0, Number(params.get("idle")) || 0) : 90),
    audience: AUDIENCES.includes(params.get("audience")) ? params.get("audience") : "general",
  };
  const MAX_TURNS = 3;
  const TAP_MS = 350; // a press shorter than this toggles listening instead of hold-to-talk
  const CHARS_PER_S = 15; // caption pace until the whole answer's audio length is known
  const HELP = {
    ptt: "Hold the button (or the space bar) while you ask, then let go.",
    handsFree: "Just ask out loud. Pause when you are done and I will answer.",
  };

  const state = {
    ws: null,
    opening: null,
    token: readToken(),
    handsFree: options.handsFree,
    audience: options.audience,
    talking: false,
    pressStart: 0,
    outRate: 22050,
    audio: null, // { ctx, stream, node }
    sources: new Set(),
    playHead: 0,
    acceptAudio: false,
    responseActive: false,
    turn: null, // the newest turn on screen
    responseTurn: null, // the turn the response in progress answers
    showing: null,
    lastActivity: performance.now(),
    retryMs: 1000,
    retryTimer: 0,
  };

  // ------------------------------------------------------------------ visible state
  const STATUS = {
    connecting: () => "Connecting…",
    ready: () => (state.handsFree ? "Listening for a question" : "Ready"),
    listening: () => "Listening…",
    thinking: () => "Thinking…",
    speaking: () => "Speaking…",
    offline: () => "Reconnecting…",
  };

  function setState(name, text) {
    ui.body.dataset.state = name;
    ui.statusText.textContent = text || STATUS[name]();
  }

  // Ready once nothing is left to hear: no response in progress and no audio still queued.
  function settle() {
    if (state.responseActive || state.sources.size) return;
    if (state.talking || ui.body.dataset.state === "listening") return; // the next question
    ui.stop.disabled = true;
    if (state.ws) setState("ready");
    touch();
  }

  function touch() {
    state.lastActivity = performance.now();
  }

  // ------------------------------------------------------------------ token
  function readToken() {
    const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
    if (match) {
      const token = decodeURIComponent(match[1]);
      sessionStorage.setItem("sos-voice-token", token);
      history.replaceState(null, "", location.pathname + location.search); // keep it off screen
      return token;
    }
    return sessionStorage.getItem("sos-voice-token") || "";
  }

  ui.tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = ui.token.value.trim();
    sessionStorage.setItem("sos-voice-token", state.token);
    ui.tokenForm.hidden = true;
    connect().catch(() => {});
  });

  // ------------------------------------------------------------------ connection
  function sessionSettings() {
    return {
      input_audio_format: "pcm16",
      sos_binary_audio: true,
      sos_binary_input_sample_rate: 16000,
      turn_detection: state.handsFree ? serverVad() : null,
      audience: state.audience,
    };
  }

  function connect() {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) return Promise.resolve(state.ws);
    if (state.opening) return state.opening;
    clearTimeout(state.retryTimer);
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const protocols = ["realtime"];
    if (state.token) protocols.push("openai-insecure-api-key." + state.token);
    if (!state.ws) setState("connecting");
    state.opening = new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(scheme + location.host + "/v1/realtime?model=sos-voice", protocols);
      } catch (err) {
        state.opening = null;
        reject(err);
        return;
      }
      ws.binaryType = "arraybuffer";
      ws.onopen = () => {
        state.ws = ws;
        send({ type: "session.update", session: sessionSettings() });
      };
      ws.onmessage = (message) => {
        if (typeof message.data === "string") {
          const event = JSON.parse(message.data);
          if (event.type === "session.updated" && state.opening) {
            state.opening = null;
            state.retryMs = 1000;
            if (!state.responseActive && !state.sources.size) setState("ready");
            resolve(ws);
          }
          onEvent(event);
        } else {
          playPcm(message.data);
        }
      };
      ws.onclose = (close) => {
        const wasOpening = state.opening !== null;
        state.opening = null;
        if (state.ws === ws || state.ws === null) {
          state.ws = null;
          stopPlayback();
          onClosed(close);
        }
        if (wasOpening) reject(new Error(close.reason || "connection closed"));
      };
    });
    return state.opening;
  }

  function onClosed(close) {
    state.responseActive = false;
    if (state.responseTurn) {
      state.responseTurn.captions.complete = true; // no more of it will come
      renderCaptions(state.responseTurn);
      state.responseTurn = null;
    }
    ui.stop.disabled = true;
    if (close.code === 1008 && /token/i.test(close.reason)) {
      if (options.kiosk) {
        // A visitor cannot fix this: say so plainly, and try again now and then in case the
        // operator fixes the kiosk's address.
        setState("offline", "Resting for now. Please ask a member of staff.");
        scheduleReconnect(60000);
      } else {
        ui.tokenForm.hidden = false;
        ui.token.focus();
        setState("offline", "An access token is needed.");
      }
      return;
    }
    // Idle timeout, a server restart or a network drop: come back quietly, so the page keeps
    // showing what is on the sphere; back off while the server stays away.
    const idle = close.code === 1001 && /idle/i.test(close.reason);
    scheduleReconnect(idle ? 0 : state.retryMs);
    if (!idle) {
      setState("offline");
      state.retryMs = Math.min(state.retryMs * 2, 30000);
    }
  }

  function scheduleReconnect(delayMs) {
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(async () => {
      try {
        await connect();
        if (state.handsFree) await startMic();
      } catch (err) {
        /* onClosed schedules the next try */
      }
    }, delayMs);
  }

  function send(event) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(event));
  }

  function serverVad() {
    return { type: "server_vad", silence_duration_ms: 600, create_response: true, interrupt_response: true };
  }

  // ------------------------------------------------------------------ server events
  function onEvent(event) {
    switch (event.type) {
      case "session.created":
      case "session.updated":
        state.outRate = event.session.sos_binary_output_sample_rate || state.outRate;
        showSphere(event.session.showing || null);
        break;
      case "input_audio_buffer.speech_started":
        stopPlayback();
        newTurn("…");
        setState("listening");
        touch();
        break;
      case "input_audio_buffer.speech_stopped":
      case "input_audio_buffer.committed":
        setState("thinking");
        break;
      case "conversation.item.input_audio_transcription.completed":
        currentTurn().transcript.textContent = event.transcript.trim() || "(nothing heard)";
        break;
      case "response.created":
        state.responseActive = true;
        state.acceptAudio = true;
        state.playHead = 0;
        state.responseTurn = currentTurn();
        ui.stop.disabled = false;
        resetCaptions(state.responseTurn);
        setState("thinking");
        break;
      case "response.audio_transcript.delta":
      case "response.text.delta":
        addCaptionText(answering(), event.delta);
        break;
      case "response.done":
        finishResponse(event.response);
        break;
      case "error":
        if (event.error.code === "response_cancel_not_active") break; // a harmless race
        showError(event.error.message);
        settle();
        break;
      default:
        break;
    }
  }

  function finishResponse(response) {
    state.responseActive = false;
    const turn = answering();
    state.responseTurn = null;
    const captions = turn.captions;
    captions.complete = true;
    if (response.status !== "completed") {
      turn.answer.classList.add("cancelled");
      captions.text = captions.text.slice(0, captions.shown); // only what was heard
    }
    const link = response.sos_link;
    if (link && link.url) {
      turn.card.href = link.url;
      turn.cardTitle.textContent = link.title || link.url;
      turn.cardUrl.textContent = link.url;
      turn.card.hidden = false;
    }
    renderCaptions(turn);
    settle();
  }

  // ------------------------------------------------------------------ now on the sphere
  function showSphere(showing) {
    const key = showing ? showing.url : null;
    if (key === (state.showing && state.showing.url)) return;
    state.showing = showing;
    ui.sphere.hidden = !showing;
    if (!showing) return;
    ui.sphereTitle.textContent = showing.title;
    ui.sphereImg.hidden = true; // the globe placeholder shows until a real image has loaded
    ui.sphereImg.removeAttribute("src");
    const thumbnail = showing.thumbnail || showing.thumbnail_image;
    if (thumbnail && /^https?:\/\//.test(thumbnail)) ui.sphereImg.src = thumbnail;
  }

  ui.sphereImg.addEventListener("load", () => {
    ui.sphereImg.hidden = !(ui.sphereImg.naturalWidth > 0);
  });
  ui.sphereImg.addEventListener("error", () => {
    ui.sphereImg.hidden = true; // unreachable (an offline exhibit hall): keep the placeholder
  });

  // ------------------------------------------------------------------ conversation view
  function newTurn(transcript) {
    const node = ui.template.content.firstElementChild.cloneNode(true);
    const turn = {
      node,
      transcript: node.querySelector(".transcript"),
      answer: node.querySelector(".answer"),
      spoken: node.querySelector(".spoken"),
      unspoken: node.querySelector(".unspoken"),
      card: node.querySelector(".card"),
      cardTitle: node.querySelector(".card-title"),
      cardUrl: node.querySelector(".card-url"),
      captions: null,
    };
    resetCaptions(turn);
    turn.transcript.textContent = transcript;
    ui.turns.prepend(node);
    while (ui.turns.children.length > MAX_TURNS) ui.turns.lastElementChild.remove();
    ui.attract.hidden = true;
    ui.turns.parentElement.scrollTop = 0;
    state.turn = turn;
    return turn;
  }

  function currentTurn() {
    return state.turn || newTurn("");
  }

  // A barge-in starts the next turn before the cancelled answer's response.done arrives.
  function answering() {
    return state.responseTurn || currentTurn();
  }

  function showError(message) {
    ui.error.textContent = message;
    ui.error.hidden = false;
    clearTimeout(showError.timer);
    showError.timer = setTimeout(() => (ui.error.hidden = true), 8000);
  }

  // ------------------------------------------------------------------ captions
  // The server streams the answer's text ahead of its audio. The words light up at the pace
  // of what has been played: an estimated pace while audio still arrives, the exact one
  // (characters / seconds of audio) once the whole answer is in, so the last word lights up
  // as the last sound plays.
  function resetCaptions(turn) {
    turn.captions = { text: "", shown: 0, audioS: 0, startAt: null, gapS: 0, complete: false };
    renderCaptions(turn);
  }

  function addCaptionText(turn, delta) {
    turn.captions.text += delta;
    renderCaptions(turn);
  }

  function renderCaptions(turn) {
    const c = turn.captions;
    const ctx = state.audio && state.audio.ctx;
    let shown = c.text.length;
    if (c.startAt === null) {
      if (!c.complete) shown = 0; // the voice has not started yet
    } else if (ctx && ctx.state === "running" && (state.sources.size || !c.complete)) {
      const now = Math.min(ctx.currentTime, c.startAt + c.audioS + c.gapS);
      const played = Math.max(0, now - c.startAt - c.gapS);
      const pace = c.complete && c.audioS > 0 ? c.text.length / c.audioS : CHARS_PER_S;
      shown = Math.min(c.text.length, Math.floor(played * pace));
      const space = c.text.indexOf(" ", shown); // whole words only
      shown = shown === 0 ? 0 : space < 0 ? c.text.length : space;
    }
    c.shown = Math.max(c.shown, Math.min(shown, c.text.length));
    turn.spoken.textContent = c.text.slice(0, c.shown);
    turn.unspoken.textContent = c.text.slice(c.shown);
  }

  function captionTick() {
    const turn = state.responseTurn || state.turn;
    if (turn && turn.captions.shown < turn.captions.text.length) renderCaptions(turn);
  }

  // ------------------------------------------------------------------ audio out
  function audioContext() {
    if (!state.audio) state.audio = { ctx: new AudioContext({ latencyHint: "interactive" }) };
    if (state.audio.ctx.state === "suspended") state.audio.ctx.resume();
    return state.audio.ctx;
  }

  function playPcm(data) {
    if (!state.acceptAudio || !data.byteLength) return;
    const ctx = audioContext();
    const pcm = new Int16Array(data);
    const buffer = ctx.createBuffer(1, pcm.length, state.outRate);
    const out = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) out[i] = pcm[i] / 32768;
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(ctx.destination);
    const start = Math.max(ctx.currentTime + 0.05, state.playHead);
    const captions = answering().captions;
    if (captions.startAt === null) captions.startAt = start;
    else captions.gapS += start - state.playHead; // the audio ran dry for a moment
    source.start(start);
    state.playHead = start + buffer.duration;
    state.sources.add(source);
    captions.audioS += buffer.duration;
    ui.stop.disabled = false;
    if (ui.body.dataset.state !== "speaking") setState("speaking");
    source.onended = () => {
      state.sources.delete(source);
      touch();
      if (!state.sources.size) {
        renderCaptions(answering());
        settle();
      }
    };
  }

  function stopPlayback() {
    state.acceptAudio = false;
    for (const source of state.sources) {
      source.onended = null;
      try {
        source.stop();
      } catch (err) {
        /* already stopped */
      }
    }
    state.sources.clear();
    state.playHead = 0;
  }

  function interrupt() {
    stopPlayback();
    if (state.responseActive) send({ type: "response.cancel" });
  }

  // ------------------------------------------------------------------ audio in
  async function startMic() {
    const ctx = audioContext();
    if (state.audio.node) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("This browser cannot use the microphone here (it needs https or localhost).");
    }
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const source = ctx.createMediaStreamSource(stream);
    const mute = ctx.createGain();
    mute.gain.value = 0;
    let node;
    if (ctx.audioWorklet) {
      await ctx.audioWorklet.addModule("capture-worklet.js");
      node = new AudioWorkletNode(ctx, "pcm16-capture", { processorOptions: { targetRate: 16000 } });
      node.port.onmessage = (message) => onMicFrame(message.data);
    } else {
      node = scriptProcessorCapture(ctx);
    }
    source.connect(node);
    node.connect(mute).connect(ctx.destination); // keeps the node pulled; it plays silence
    state.audio.stream = stream;
    state.audio.node = node;
  }

  // Fallback for browsers without AudioWorklet: decimate on the main thread.
  function scriptProcessorCapture(ctx) {
    const node = ctx.createScriptProcessor(4096, 1, 1);
    const step = ctx.sampleRate / 16000;
    let next = 0;
    node.onaudioprocess = (event) => {
      const x = event.inputBuffer.getChannelData(0);
      const out = [];
      for (; next < x.length; next += step) {
        const i = Math.floor(next);
        let acc = 0;
        let n = 0;
        for (let k = Math.max(0, i - 1); k <= Math.min(x.length - 1, i + 1); k++, n++) acc += x[k];
        const s = Math.max(-1, Math.min(1, acc / n));
        out.push(s < 0 ? s * 0x8000 : s * 0x7fff);
      }
      next -= x.length;
      onMicFrame(Int16Array.from(out).buffer);
    };
    return node;
  }

  function onMicFrame(buffer) {
    if (!(state.handsFree || state.talking)) return;
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(buffer);
  }

  // ------------------------------------------------------------------ push-to-talk
  async function startTalking() {
    if (state.talking || state.handsFree) return;
    state.talking = true;
    state.pressStart = performance.now();
    touch();
    ui.talk.setAttribute("aria-pressed", "true");
    ui.talkLabel.textContent = "Listening… let go to ask";
    interrupt();
    try {
      await connect();
      await startMic();
      send({ type: "input_audio_buffer.clear" });
      newTurn("…");
      setState("listening");
    } catch (err) {
      resetTalk();
      showError(err.message || String(err));
    }
  }

  function stopTalking() {
    if (!state.talking) return;
    resetTalk();
    send({ type: "input_audio_buffer.commit" });
    send({ type: "response.create" });
    setState("thinking");
  }

  function resetTalk() {
    state.talking = false;
    ui.talk.setAttribute("aria-pressed", "false");
    ui.talkLabel.textContent = state.handsFree ? "Just ask" : "Hold to talk";
  }

  function press() {
    if (state.handsFree) return;
    if (state.talking) stopTalking(); // second tap of tap-to-talk
    else startTalking();
  }

  function release() {
    if (state.talking && performance.now() - state.pressStart >= TAP_MS) stopTalking();
  }

  ui.talk.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    ui.talk.setPointerCapture(event.pointerId);
    press();
  });
  ui.talk.addEventListener("pointerup", release);
  ui.talk.addEventListener("pointercancel", release);
  ui.talk.addEventListener("contextmenu", (event) => event.preventDefault());
  ui.talk.addEventListener("click", (event) => {
    // Keyboard "click" (Enter) and assistive tech: tap-to-talk semantics.
    if (event.detail === 0) press();
  });

  const typing = (target) => target instanceof HTMLInputElement && target.type !== "radio";
  document.addEventListener("keydown", (event) => {
    touch();
    if (event.code !== "Space" || event.repeat || typing(event.target)) return;
    event.preventDefault();
    press();
  });
  document.addEventListener("keyup", (event) => {
    if (event.code !== "Space" || typing(event.target)) return;
    event.preventDefault();
    release();
  });
  document.addEventListener("pointerdown", touch, { capture: true });

  // ------------------------------------------------------------------ hands-free
  function showMode() {
    ui.handsfree.setAttribute("aria-pressed", String(state.handsFree));
    ui.handsfree.textContent = state.handsFree ? "Hands-free: on" : "Hands-free: off";
    ui.talk.disabled = state.handsFree;
    ui.body.classList.toggle("handsfree", state.handsFree);
    ui.talkHelp.textContent = state.handsFree ? HELP.handsFree : HELP.ptt;
    resetTalk();
  }

  ui.handsfree.addEventListener("click", async () => {
    state.handsFree = !state.handsFree;
    showMode();
    try {
      await connect();
      send({ type: "session.update", session: { turn_detection: state.handsFree ? serverVad() : null } });
      if (state.handsFree) await startMic();
      settle();
    } catch (err) {
      showError(err.message || String(err));
    }
  });

  ui.stop.addEventListener("click", () => {
    interrupt();
    const turn = state.turn;
    if (turn) {
      turn.answer.classList.add("cancelled");
      turn.captions.text = turn.captions.text.slice(0, turn.captions.shown);
      renderCaptions(turn);
    }
    state.responseActive = false;
    settle();
  });

  // ------------------------------------------------------------------ audience
  function showAudience() {
    for (const input of ui.audience) input.checked = input.value === state.audience;
  }

  for (const input of ui.audience) {
    input.addEventListener("change", () => {
      if (!input.checked) return;
      state.audience = input.value;
      send({ type: "session.update", session: { audience: state.audience } });
    });
  }

  // ------------------------------------------------------------------ typed questions
  async function askTyped(text) {
    interrupt();
    audioContext(); // unlock audio playback inside the user's gesture
    touch();
    try {
      await connect();
    } catch (err) {
      showError(err.message || String(err));
      return;
    }
    newTurn(text);
    send({
      type: "conversation.item.create",
      item: { type: "message", role: "user", content: [{ type: "input_text", text }] },
    });
    send({ type: "response.create" });
    setState("thinking");
  }

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.question.value.trim();
    if (!text) return;
    ui.question.value = "";
    askTyped(text);
  });

  for (const example of document.querySelectorAll(".example")) {
    example.addEventListener("click", () => askTyped(example.textContent.trim()));
  }

  // ------------------------------------------------------------------ idle reset
  // The next visitor gets a clean screen and a new session (the server forgets the last
  // visitor's conversation with it), the default audience, and the attract screen.
  function idleCheck() {
    const busy =
      state.talking || state.responseActive || state.sources.size || ui.body.dataset.state === "listening";
    if (busy) touch();
    const idleFor = performance.now() - state.lastActivity;
    if (!options.idleMs || busy || idleFor < options.idleMs || !state.turn) return;
    startOver();
  }

  function startOver() {
    state.turn = null;
    ui.turns.replaceChildren();
    ui.attract.hidden = false;
    ui.question.value = "";
    ui.error.hidden = true;
    state.audience = options.audience;
    showAudience();
    const ws = state.ws;
    if (ws) {
      state.ws = null;
      ws.onclose = null; // our own close: no "reconnecting" for it
      ws.close(1000, "new visitor");
    }
    touch();
    connect()
      .then(() => (state.handsFree ? startMic() : null))
      .catch(() => {});
  }

  // ------------------------------------------------------------------ start
  if (options.kiosk) {
    ui.body.classList.add("kiosk");
    document.addEventListener("contextmenu", (event) => event.preventDefault());
  }
  showMode();
  showAudience();
  setInterval(idleCheck, 1000);
  setInterval(captionTick, 100);
  connect()
    .then(() => (state.handsFree ? startMic() : null))
    .catch(() => {});
})();
