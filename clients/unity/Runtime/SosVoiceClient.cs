// SosVoiceClient: a Unity MonoBehaviour that talks to an sos-voice server (docs/protocol.md).
//
// It streams the microphone as raw 16 kHz PCM16 binary frames (the binary fast path), receives
// the answer's speech as raw PCM16 binary frames and plays them through a streaming AudioClip,
// and raises UnityEvents for the transcript, the answer text, the catalog link, the dataset on
// the sphere, speaking start/end and the connection status. Turns end by the server's VAD
// (hands-free) or by BeginTalking()/EndTalking() (push-to-talk).
//
// It stays connected by itself: an idle timeout, a Wi-Fi drop or a server restart is followed by
// a reconnection with exponential backoff (Backoff.cs), with a fresh short-lived token from the
// mint endpoint when one is configured (TokenSource.cs). No secret is a serialized field.
//
// Barge-in: HalfDuplex (the default) keeps the microphone closed while the answer plays, so a
// headset without echo cancellation cannot interrupt itself; Interrupt lets the visitor cut the
// answer short by speaking, for devices with echo cancellation.
//
// Threading: the WebSocket runs on background tasks; everything that touches Unity objects or
// raises events is queued and run in Update() on the main thread. Audio playback is filled from
// a lock-protected buffer on Unity's audio thread.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using UnityEngine;
using UnityEngine.Events;

namespace SosVoice
{
    [Serializable] public class SosTextEvent : UnityEvent<string> { }
    [Serializable] public class SosLinkEvent : UnityEvent<string, string> { }

    /// <summary>What the microphone does while an answer is being spoken.</summary>
    public enum BargeInMode
    {
        /// <summary>Microphone closed while the answer plays (and a short tail after it).</summary>
        HalfDuplex,
        /// <summary>Microphone open; speaking interrupts the answer (needs echo cancellation).</summary>
        Interrupt,
    }

    public class SosVoiceClient : MonoBehaviour
    {
        [Header("Server")]
        [Tooltip("ws://HOST:PORT/v1/realtime (wss:// when the server has TLS)")]
        public string serverUrl = "ws://127.0.0.1:8765/v1/realtime";
        [Tooltip("Mints short-lived tokens with the operator key (POST, see README); empty = no token or SetToken()")]
        public string tokenEndpoint = "";
        public bool connectOnStart = true;
        [Tooltip("Longest wait between reconnection attempts, in seconds")]
        public float maxReconnectDelaySeconds = 30f;

        [Header("Microphone")]
        [Tooltip("Microphone device name; empty = the default microphone")]
        public string microphoneDevice = "";
        [Tooltip("On: the server's VAD ends each turn. Off: call BeginTalking()/EndTalking()")]
        public bool handsFree = true;
        [Tooltip("Silence that ends a turn in hands-free mode, in ms")]
        public int silenceDurationMs = 600;
        [Tooltip("HalfDuplex: microphone closed while the answer plays. Interrupt: speaking cuts the answer (needs echo cancellation)")]
        public BargeInMode bargeIn = BargeInMode.HalfDuplex;
        [Tooltip("HalfDuplex: the microphone stays closed this long after the answer ends (room echo), in ms")]
        public int halfDuplexTailMs = 300;

        [Header("Answer")]
        [Tooltip("Plays the answer; one is added if empty")]
        public AudioSource output;
        [Tooltip("kids, general or educator")]
        public string audience = "general";
        [Tooltip("Catalog URL, slug or title of this device's own dataset (optional; empty = follow the installation's)")]
        public string showing = "";

        [Header("Events (main thread)")]
        public SosTextEvent onTranscript = new SosTextEvent();   // what the visitor said
        public SosTextEvent onAnswerText = new SosTextEvent();   // the answer so far
        public SosLinkEvent onLink = new SosLinkEvent();         // (url, title) of the catalog page
        public SosLinkEvent onShowing = new SosLinkEvent();      // (url, title) on the sphere; ("", "") = none
        public UnityEvent onSpeakingStarted = new UnityEvent();  // the first sound of an answer plays
        public UnityEvent onSpeakingEnded = new UnityEvent();    // its last sound played, or it was stopped
        public SosTextEvent onStatus = new SosTextEvent();       // connecting / listening / thinking / answering / reconnecting / errors

        /// <summary>Replaces the token endpoint: any way of getting a session token (null = none).</summary>
        [NonSerialized] public Func<CancellationToken, Task<SessionToken>> TokenProvider;

        const int MicRate = 16000;
        const int MaxBufferedSeconds = 120;
        static readonly TimeSpan StableConnection = TimeSpan.FromSeconds(10);

        readonly ConcurrentQueue<Action> mainThread = new ConcurrentQueue<Action>();
        readonly StringBuilder answer = new StringBuilder();
        CancellationTokenSource running;          // the whole Connect() .. Disconnect() lifetime
        volatile ClientWebSocket socket;          // the live connection, null between attempts
        volatile BlockingCollection<Frame> outgoing;
        string operatorKey;
        string fixedToken;
        TokenMinter minter;
        string shownUrl;

        AudioClip micClip;
        int micRate = MicRate;
        int micReadPos;
        bool talking;
        readonly Stopwatch sinceSpeaking = Stopwatch.StartNew();

        // Playback: PCM floats waiting for the audio thread; guarded by playLock.
        readonly object playLock = new object();
        readonly Queue<float> playBuffer = new Queue<float>();
        volatile bool acceptAudio;
        volatile bool responseFinished = true;
        volatile bool speaking;
        int outputRate = 22050;
        AudioClip playClip;

        struct Frame
        {
            public byte[] Data;
            public WebSocketMessageType Kind;
        }

        struct Closed
        {
            public int Code;
            public string Reason;
        }

#pragma warning disable 0649 // the fields below are filled by JsonUtility
        [Serializable] class LinkBody { public string url; public string title; }
        [Serializable] class ErrorBody { public string type; public string code; public string message; }
        [Serializable] class ResponseBody { public string id; public string status; public LinkBody sos_link; }
        [Serializable] class SessionBody { public int sos_binary_output_sample_rate; public LinkBody showing; }
        [Serializable] class ServerEvent
        {
            public string type;
            public string delta;
            public string transcript;
            public ErrorBody error;
            public ResponseBody response;
            public SessionBody session;
        }
#pragma warning restore 0649

        /// <summary>True while connected and the server has accepted the session.</summary>
        public bool IsConnected { get { var s = socket; return s != null && s.State == WebSocketState.Open; } }

        /// <summary>True from the first sound of an answer until its last (or until it is stopped).</summary>
        public bool IsSpeaking { get { return speaking; } }

        // ------------------------------------------------------------------ Unity lifecycle
        void Start()
        {
            if (output == null) output = gameObject.AddComponent<AudioSource>();
            if (connectOnStart) Connect();
        }

        void Update()
        {
            Action action;
            while (mainThread.TryDequeue(out action)) action();
            if (micClip != null) PumpMicrophone();
        }

        void OnDestroy() { Disconnect(); }

        // ------------------------------------------------------------------ public API
        /// <summary>The operator's key, for minting session tokens at tokenEndpoint. Give it at run
        /// time (a provisioning screen, the platform keystore); never put it in a scene or build.</summary>
        public void SetOperatorKey(string key) { operatorKey = key; minter = null; }

        /// <summary>A fixed token (development, or a token your own backend handed over).</summary>
        public void SetToken(string token) { fixedToken = token; }

        /// <summary>Connects to serverUrl and keeps the connection up until Disconnect().</summary>
        public void Connect()
        {
            Disconnect();
            running = new CancellationTokenSource();
            var ct = running.Token;
            StartMicrophone();
            Task.Run(() => RunAsync(ct));
        }

        /// <summary>Closes the connection and stops reconnecting.</summary>
        public void Disconnect()
        {
            if (running != null) running.Cancel();
            running = null;
            var s = socket;
            socket = null;
            if (s != null)
            {
                try { s.Abort(); } catch (Exception) { }
                s.Dispose();
            }
            if (micClip != null) Microphone.End(microphoneDevice);
            micClip = null;
            StopPlayback();
        }

        /// <summary>Push-to-talk: start streaming the visitor's question.</summary>
        public void BeginTalking()
        {
            if (handsFree || talking) return;
            Interrupt();
            SendJson("{\"type\":\"input_audio_buffer.clear\"}");
            if (micClip != null) micReadPos = Microphone.GetPosition(microphoneDevice);
            talking = true;
            onStatus.Invoke("listening");
        }

        /// <summary>Push-to-talk: the question is finished; ask for the answer.</summary>
        public void EndTalking()
        {
            if (!talking) return;
            PumpMicrophone();
            talking = false;
            SendJson("{\"type\":\"input_audio_buffer.commit\"}");
            SendJson("{\"type\":\"response.create\"}");
            onStatus.Invoke("thinking");
        }

        /// <summary>A typed question.</summary>
        public void Ask(string question)
        {
            Interrupt();
            SendJson("{\"type\":\"conversation.item.create\",\"item\":{\"type\":\"message\",\"role\":\"user\"," +
                     "\"content\":[{\"type\":\"input_text\",\"text\":" + JsonString(question) + "}]}}");
            SendJson("{\"type\":\"response.create\"}");
            onTranscript.Invoke(question);
        }

        /// <summary>Stops the answer being spoken (and generated).</summary>
        public void Interrupt()
        {
            bool wasActive = !responseFinished || speaking;
            StopPlayback();
            if (wasActive) SendJson("{\"type\":\"response.cancel\"}");
        }

        /// <summary>Switches between hands-free (server VAD) and push-to-talk.</summary>
        public void SetHandsFree(bool on)
        {
            handsFree = on;
            talking = false;
            SendSessionUpdate();
        }

        /// <summary>Switches barge-in at run time (e.g. when a headset with echo cancellation is detected).</summary>
        public void SetBargeIn(BargeInMode mode)
        {
            bargeIn = mode;
            SendSessionUpdate();
        }

        // ------------------------------------------------------------------ connection
        async Task RunAsync(CancellationToken ct)
        {
            var backoff = new Backoff(0.5, Math.Max(1.0, maxReconnectDelaySeconds));
            while (!ct.IsCancellationRequested)
            {
                Closed closed;
                var started = Stopwatch.StartNew();
                try
                {
                    closed = await ConnectOnceAsync(ct);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e)
                {
                    closed = new Closed { Code = 0, Reason = e.Message };
                }
                if (ct.IsCancellationRequested) return;
                if (started.Elapsed > StableConnection) backoff.Reset();
                // A refused token (1008, or a handshake that failed): mint a new one next time.
                if ((closed.Code == 1008 || closed.Code == 0) && minter != null) minter.Invalidate();
                // The server's idle timeout is routine: come back at once (the sphere's dataset
                // keeps arriving). Anything else waits, longer each time the server stays away.
                bool idle = closed.Code == 1001 && closed.Reason.IndexOf("idle", StringComparison.OrdinalIgnoreCase) >= 0;
                TimeSpan delay = idle ? TimeSpan.Zero : backoff.Next();
                string why = closed.Code != 0 ? closed.Code + " " + closed.Reason : closed.Reason;
                mainThread.Enqueue(() =>
                {
                    StopPlayback();
                    onStatus.Invoke("reconnecting in " + delay.TotalSeconds.ToString("0.0") + " s (" + why + ")");
                });
                try { await Task.Delay(delay, ct); }
                catch (OperationCanceledException) { return; }
            }
        }

        async Task<Closed> ConnectOnceAsync(CancellationToken ct)
        {
            mainThread.Enqueue(() => onStatus.Invoke("connecting"));
            string token = await SessionTokenAsync(ct);
            using (var ws = new ClientWebSocket())
            using (var frames = new BlockingCollection<Frame>(256))
            using (var connection = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                if (!string.IsNullOrEmpty(token)) ws.Options.SetRequestHeader("Authorization", "Bearer " + token);
                ws.Options.AddSubProtocol("realtime");
                ws.Options.KeepAliveInterval = TimeSpan.FromSeconds(15); // finds a dead Wi-Fi link
                await ws.ConnectAsync(new Uri(serverUrl), ct);
                outgoing = frames;
                socket = ws;
                var sender = Task.Run(() => SendLoop(ws, frames, connection.Token));
                // A send that fails (a dropped Wi-Fi link) ends the connection: the receive side
                // of a half-open TCP connection could otherwise wait for minutes.
                _ = sender.ContinueWith(t =>
                {
                    try { connection.Cancel(); } catch (ObjectDisposedException) { }
                }, TaskContinuationOptions.OnlyOnFaulted);
                mainThread.Enqueue(() =>
                {
                    SendSessionUpdate();
                    onStatus.Invoke(handsFree ? "listening" : "ready");
                });
                try
                {
                    return await ReceiveLoop(ws, connection.Token);
                }
                finally
                {
                    if (socket == ws) socket = null;
                    if (outgoing == frames) outgoing = null;
                    connection.Cancel();
                    try { await sender; } catch (Exception) { }
                }
            }
        }

        async Task<string> SessionTokenAsync(CancellationToken ct)
        {
            if (TokenProvider != null) return (await TokenProvider(ct)).Value;
            if (!string.IsNullOrEmpty(tokenEndpoint))
            {
                if (minter == null)
                    minter = new TokenMinter(tokenEndpoint, () =>
                        !string.IsNullOrEmpty(operatorKey) ? operatorKey : Environment.GetEnvironmentVariable("SOS_VOICE_OPERATOR_KEY"));
                return (await minter.GetAsync(ct)).Value;
            }
            return fixedToken;
        }

        async Task<Closed> ReceiveLoop(ClientWebSocket ws, CancellationToken ct)
        {
            var buffer = new byte[64 * 1024];
            var message = new MemoryStream();
            while (ws.State == WebSocketState.Open)
            {
                var result = await ws.ReceiveAsync(new ArraySegment<byte>(buffer), ct);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    int code = result.CloseStatus.HasValue ? (int)result.CloseStatus.Value : 0;
                    return new Closed { Code = code, Reason = result.CloseStatusDescription ?? "" };
                }
                message.Write(buffer, 0, result.Count);
                if (!result.EndOfMessage) continue;
                byte[] data = message.ToArray();
                message.SetLength(0);
                if (result.MessageType == WebSocketMessageType.Binary)
                {
                    EnqueuePcm(data); // the audio thread reads it; no main-thread hop needed
                }
                else
                {
                    var e = JsonUtility.FromJson<ServerEvent>(Encoding.UTF8.GetString(data));
                    mainThread.Enqueue(() => OnServerEvent(e));
                }
            }
            return new Closed { Code = ws.CloseStatus.HasValue ? (int)ws.CloseStatus.Value : 0, Reason = "connection lost" };
        }

        static async Task SendLoop(ClientWebSocket ws, BlockingCollection<Frame> frames, CancellationToken ct)
        {
            // One SendAsync at a time: ClientWebSocket allows no concurrent sends.
            foreach (var frame in frames.GetConsumingEnumerable(ct))
                await ws.SendAsync(new ArraySegment<byte>(frame.Data), frame.Kind, true, ct);
        }

        void SendJson(string json)
        {
            var frames = outgoing;
            if (frames == null) return; // between connections: the next session.update sets things up again
            try { frames.TryAdd(new Frame { Data = Encoding.UTF8.GetBytes(json), Kind = WebSocketMessageType.Text }); }
            catch (ObjectDisposedException) { }
        }

        // ------------------------------------------------------------------ protocol
        void SendSessionUpdate()
        {
            string interrupt = bargeIn == BargeInMode.Interrupt ? "true" : "false";
            string turnDetection = handsFree
                ? "{\"type\":\"server_vad\",\"silence_duration_ms\":" + silenceDurationMs +
                  ",\"create_response\":true,\"interrupt_response\":" + interrupt + "}"
                : "null";
            var json = new StringBuilder("{\"type\":\"session.update\",\"session\":{");
            json.Append("\"input_audio_format\":\"pcm16\",\"sos_binary_audio\":true,");
            json.Append("\"sos_binary_input_sample_rate\":").Append(micRate).Append(',');
            json.Append("\"turn_detection\":").Append(turnDetection).Append(',');
            json.Append("\"audience\":").Append(JsonString(audience));
            if (!string.IsNullOrEmpty(showing)) json.Append(",\"showing\":").Append(JsonString(showing));
            json.Append("}}");
            SendJson(json.ToString());
        }

        void OnServerEvent(ServerEvent e)
        {
            switch (e.type)
            {
                case "session.created":
                case "session.updated":
                    if (e.session == null) break;
                    if (e.session.sos_binary_output_sample_rate > 0 &&
                        (playClip == null || e.session.sos_binary_output_sample_rate != outputRate))
                    {
                        outputRate = e.session.sos_binary_output_sample_rate;
                        StartPlaybackClip();
                    }
                    // JsonUtility fills a missing or null object with empty fields: "" = nothing showing.
                    string url = e.session.showing != null ? e.session.showing.url ?? "" : "";
                    if (url != shownUrl)
                    {
                        shownUrl = url;
                        onShowing.Invoke(url, url.Length > 0 ? e.session.showing.title ?? "" : "");
                    }
                    break;
                case "input_audio_buffer.speech_started":
                    StopPlayback(); // barge-in: the server cancels the answer too
                    onStatus.Invoke("listening");
                    break;
                case "input_audio_buffer.speech_stopped":
                case "input_audio_buffer.committed":
                    onStatus.Invoke("thinking");
                    break;
                case "conversation.item.input_audio_transcription.completed":
                    onTranscript.Invoke(e.transcript);
                    break;
                case "response.created":
                    answer.Length = 0;
                    responseFinished = false;
                    acceptAudio = true;
                    onStatus.Invoke("answering");
                    break;
                case "response.audio_transcript.delta":
                case "response.text.delta":
                case "response.output_audio_transcript.delta":
                case "response.output_text.delta":
                    answer.Append(e.delta);
                    onAnswerText.Invoke(answer.ToString());
                    break;
                case "response.done":
                    responseFinished = true; // speaking ends when the audio thread has played the rest
                    if (e.response != null && e.response.sos_link != null && !string.IsNullOrEmpty(e.response.sos_link.url))
                        onLink.Invoke(e.response.sos_link.url, e.response.sos_link.title);
                    if (e.response != null && e.response.status != "completed") onStatus.Invoke("stopped");
                    else if (!speaking) onStatus.Invoke(handsFree ? "listening" : "ready");
                    break;
                case "error":
                    if (e.error != null && e.error.code != "response_cancel_not_active")
                        onStatus.Invoke("error: " + e.error.message);
                    break;
            }
        }

        static string JsonString(string s)
        {
            var sb = new StringBuilder("\"");
            foreach (char c in s ?? "")
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    default:
                        if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4"));
                        else sb.Append(c);
                        break;
                }
            }
            return sb.Append('"').ToString();
        }

        // ------------------------------------------------------------------ microphone
        void StartMicrophone()
        {
            int minRate, maxRate;
            Microphone.GetDeviceCaps(microphoneDevice, out minRate, out maxRate);
            micRate = (minRate == 0 && maxRate == 0) ? MicRate : Mathf.Clamp(MicRate, minRate, maxRate);
            micClip = Microphone.Start(microphoneDevice, true, 1, micRate);
            micReadPos = 0; // the server resamples micRate (sent in session.update) to 16 kHz
        }

        bool MicrophoneOpen()
        {
            if (!(handsFree || talking) || !IsConnected) return false;
            if (bargeIn == BargeInMode.Interrupt || talking) return true;
            // Half-duplex: closed while the answer plays, and for a moment after (room echo).
            return !speaking && sinceSpeaking.ElapsedMilliseconds >= halfDuplexTailMs;
        }

        // Sends the samples recorded since the last call as one PCM16 binary frame (or drops
        // them while the microphone is closed, so they are never sent late).
        void PumpMicrophone()
        {
            int pos = Microphone.GetPosition(microphoneDevice);
            int total = micClip.samples;
            if (total <= 0) return;
            int count = (pos - micReadPos + total) % total;
            if (count == 0) return;
            if (!MicrophoneOpen())
            {
                micReadPos = pos;
                return;
            }
            var samples = new float[count];
            micClip.GetData(samples, micReadPos); // GetData wraps around the looping clip
            micReadPos = pos;
            var bytes = new byte[count * 2];
            for (int i = 0; i < count; i++)
            {
                short s = (short)Mathf.Clamp(samples[i] * 32767f, -32768f, 32767f);
                bytes[2 * i] = (byte)(s & 0xff);
                bytes[2 * i + 1] = (byte)((s >> 8) & 0xff);
            }
            var frames = outgoing;
            if (frames == null) return;
            try { frames.TryAdd(new Frame { Data = bytes, Kind = WebSocketMessageType.Binary }); }
            catch (ObjectDisposedException) { }
        }

        // ------------------------------------------------------------------ playback
        void StartPlaybackClip()
        {
            lock (playLock) playBuffer.Clear();
            playClip = AudioClip.Create("sos-voice-answer", outputRate, 1, outputRate, true, OnAudioRead);
            output.clip = playClip;
            output.loop = true;
            output.Play();
        }

        void EnqueuePcm(byte[] pcm)
        {
            if (!acceptAudio) return;
            lock (playLock)
            {
                int room = outputRate * MaxBufferedSeconds - playBuffer.Count;
                for (int i = 0; i + 1 < pcm.Length && room > 0; i += 2, room--)
                    playBuffer.Enqueue((short)(pcm[i] | (pcm[i + 1] << 8)) / 32768f);
            }
        }

        // Unity's audio thread asks for the next samples of the streaming clip. Speaking starts
        // with the first real sample and ends when the buffer runs dry after response.done.
        void OnAudioRead(float[] data)
        {
            bool played = false;
            bool drained;
            lock (playLock)
            {
                for (int i = 0; i < data.Length; i++)
                {
                    if (playBuffer.Count > 0)
                    {
                        data[i] = playBuffer.Dequeue();
                        played = true;
                    }
                    else data[i] = 0f;
                }
                drained = playBuffer.Count == 0;
            }
            if (played && !speaking)
            {
                speaking = true;
                mainThread.Enqueue(() => onSpeakingStarted.Invoke());
            }
            if (speaking && drained && responseFinished) EndSpeaking();
        }

        void EndSpeaking()
        {
            if (!speaking) return;
            speaking = false;
            sinceSpeaking.Restart();
            mainThread.Enqueue(() =>
            {
                onSpeakingEnded.Invoke();
                if (responseFinished) onStatus.Invoke(handsFree ? "listening" : "ready");
            });
        }

        void StopPlayback()
        {
            acceptAudio = false;
            responseFinished = true;
            lock (playLock) playBuffer.Clear();
            EndSpeaking();
        }
    }
}
