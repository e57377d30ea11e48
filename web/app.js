// Ask the Sphere: the browser client of sos-voice (docs/protocol.md).
//
// Speaks the server's OpenAI-Realtime events over one WebSocket, with the binary fast path:
// microphone audio goes up as raw 16 kHz PCM16 frames, the answer's speech comes down as raw
// PCM16 at the voice's rate. Text (transcript, answer, catalog link) comes as JSON events.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"),
    talk: $("talk"),
    talkLabel: $("talk-label"),
    handsfree: $("handsfree"),
    stop: $("stop"),
    form: $("ask-form"),
    question: $("question"),
    error: $("error"),
    tokenForm: $("token-form"),
    token: $("token"),
    turns: $("turns"),
    template: $("turn-template"),
  };
  const MAX_TURNS = 4;
  const TAP_MS = 350; // a press shorter than this toggles listening instead of hold-to-talk

  const state = {
    ws: null,
    opening: null,
    token: readToken(),
    handsFree: false,
    talking: false,
    pressStart: 0,
    outRate: 22050,
    audio: null, // { ctx, stream, node }
    sources: new Set(),
    playHead: 0,
    acceptAudio: false,
    responseActive: false,
    turn: null,
    awaitingTranscript: false,
  };

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
  function connect() {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) return Promise.resolve(state.ws);
    if (state.opening) return state.opening;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const protocols = ["realtime"];
    if (state.token) protocols.push("openai-insecure-api-key." + state.token);
    setStatus("Connecting…");
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
        send({
          type: "session.update",
          session: {
            input_audio_format: "pcm16",
            sos_binary_audio: true,
            sos_binary_input_sample_rate: 16000,
            turn_detection: state.handsFree ? serverVad() : null,
          },
        });
      };
      ws.onmessage = (message) => {
        if (typeof message.data === "string") {
          const event = JSON.parse(message.data);
          if (event.type === "session.updated" && state.opening) {
            state.opening = null;
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
        if (state.ws === ws) state.ws = null;
        stopPlayback();
        onClosed(close);
        if (wasOpening) reject(new Error(close.reason || "connection closed"));
      };
    });
    return state.opening;
  }

  function onClosed(close) {
    state.responseActive = false;
    ui.stop.disabled = true;
    if (close.code === 1008 && /token/i.test(close.reason)) {
      ui.tokenForm.hidden = false;
      ui.token.focus();
      setStatus("An access token is needed.");
      return;
    }
    if (close.code === 1001 && /idle/i.test(close.reason)) {
      setStatus("Ready. Press “Hold to talk” or type a question.");
      return;
    }
    const why = close.reason ? ` (${close.reason})` : "";
    setStatus(`Disconnected${why}.`);
    if (state.handsFree) setTimeout(() => connect().catch(() => {}), 2000);
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
        break;
      case "input_audio_buffer.speech_started":
        stopPlayback();
        newTurn("…");
        state.awaitingTranscript = true;
        setStatus("Listening…");
        break;
      case "input_audio_buffer.speech_stopped":
      case "input_audio_buffer.committed":
        setStatus("Thinking…");
        break;
      case "conversation.item.input_audio_transcription.completed":
        state.awaitingTranscript = false;
        currentTurn().transcript.textContent = event.transcript.trim() || "(nothing heard)";
        break;
      case "response.created":
        state.responseActive = true;
        state.acceptAudio = true;
        state.playHead = 0;
        ui.stop.disabled = false;
        currentTurn().answer.textContent = "";
        setStatus("Answering…");
        break;
      case "response.audio_transcript.delta":
      case "response.text.delta":
        currentTurn().answer.textContent += event.delta;
        break;
      case "response.done":
        finishResponse(event.response);
        break;
      case "error":
        if (event.error.code === "response_cancel_not_active") break; // a harmless race
        showError(event.error.message);
        if (!state.responseActive) setStatus(readyText());
        break;
      default:
        break;
    }
  }

  function finishResponse(response) {
    state.responseActive = false;
    ui.stop.disabled = state.sources.size === 0;
    const turn = currentTurn();
    if (response.status !== "completed") turn.answer.classList.add("cancelled");
    const link = response.sos_link;
    if (link && link.url) {
      turn.card.href = link.url;
      turn.cardTitle.textContent = link.title || link.url;
      turn.cardUrl.textContent = link.url;
      turn.card.hidden = false;
    }
    setStatus(readyText());
  }

  function readyText() {
    if (state.handsFree) return "Listening for your question…";
    return "Ready. Press “Hold to talk” or type a question.";
  }

  // ------------------------------------------------------------------ conversation view
  function newTurn(transcript) {
    const node = ui.template.content.firstElementChild.cloneNode(true);
    const turn = {
      node,
      transcript: node.querySelector(".transcript"),
      answer: node.querySelector(".answer"),
      card: node.querySelector(".card"),
      cardTitle: node.querySelector(".card-title"),
      cardUrl: node.querySelector(".card-url"),
    };
    turn.transcript.textContent = transcript;
    ui.turns.prepend(node);
    while (ui.turns.children.length > MAX_TURNS) ui.turns.lastElementChild.remove();
    state.turn = turn;
    return turn;
  }

  function currentTurn() {
    return state.turn || newTurn("");
  }

  function setStatus(text) {
    ui.status.textContent = text;
  }

  function showError(message) {
    ui.error.textContent = message;
    ui.error.hidden = false;
    clearTimeout(showError.timer);
    showError.timer = setTimeout(() => (ui.error.hidden = true), 8000);
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
    source.start(start);
    state.playHead = start + buffer.duration;
    state.sources.add(source);
    ui.stop.disabled = false;
    source.onended = () => {
      state.sources.delete(source);
      if (!state.sources.size && !state.responseActive) ui.stop.disabled = true;
    };
  }

  function stopPlayback() {
    state.acceptAudio = false;
    for (const source of state.sources) {
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
    ui.talk.setAttribute("aria-pressed", "true");
    ui.talkLabel.textContent = "Listening… let go to ask";
    interrupt();
    try {
      await connect();
      await startMic();
      send({ type: "input_audio_buffer.clear" });
      newTurn("…");
      setStatus("Listening…");
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
    setStatus("Thinking…");
  }

  function resetTalk() {
    state.talking = false;
    ui.talk.setAttribute("aria-pressed", "false");
    ui.talkLabel.textContent = "Hold to talk";
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

  const typing = (target) => target instanceof HTMLInputElement;
  document.addEventListener("keydown", (event) => {
    if (event.code !== "Space" || event.repeat || typing(event.target)) return;
    event.preventDefault();
    press();
  });
  document.addEventListener("keyup", (event) => {
    if (event.code !== "Space" || typing(event.target)) return;
    event.preventDefault();
    release();
  });

  // ------------------------------------------------------------------ hands-free
  ui.handsfree.addEventListener("click", async () => {
    state.handsFree = !state.handsFree;
    ui.handsfree.setAttribute("aria-pressed", String(state.handsFree));
    ui.handsfree.textContent = state.handsFree ? "Hands-free: on" : "Hands-free: off";
    ui.talk.disabled = state.handsFree;
    resetTalk();
    if (state.handsFree) ui.talkLabel.textContent = "Hands-free: just ask";
    try {
      await connect();
      send({ type: "session.update", session: { turn_detection: state.handsFree ? serverVad() : null } });
      if (state.handsFree) await startMic();
      setStatus(readyText());
    } catch (err) {
      showError(err.message || String(err));
    }
  });

  ui.stop.addEventListener("click", () => {
    interrupt();
    ui.stop.disabled = true;
    setStatus(readyText());
  });

  // ------------------------------------------------------------------ typed questions
  ui.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = ui.question.value.trim();
    if (!text) return;
    interrupt();
    audioContext(); // unlock audio playback inside the user's gesture
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
    ui.question.value = "";
    setStatus("Thinking…");
  });

  connect().catch(() => {});
})();
