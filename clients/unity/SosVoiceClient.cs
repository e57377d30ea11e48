// SosVoiceClient: a Unity MonoBehaviour that talks to an sos-voice server (docs/protocol.md).
//
// It streams the microphone as raw 16 kHz PCM16 binary frames (the binary fast path), receives
// the answer's speech as raw PCM16 binary frames and plays them through a streaming AudioClip,
// and raises UnityEvents for the transcript, the answer text, the catalog link and the status.
// Turns end by the server's VAD (hands-free) or by BeginTalking()/EndTalking() (push-to-talk).
//
// Threading: the WebSocket runs on background tasks; everything that touches Unity objects or
// raises events is queued and run in Update() on the main thread. Audio playback is filled from
// a lock-protected buffer on Unity's audio thread.

using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using UnityEngine;
using UnityEngine.Events;

[Serializable] public class SosTextEvent : UnityEvent<string> { }
[Serializable] public class SosLinkEvent : UnityEvent<string, string> { }

public class SosVoiceClient : MonoBehaviour
{
    [Header("Server")]
    [Tooltip("ws://HOST:PORT/v1/realtime (wss:// when the server has TLS)")]
    public string serverUrl = "ws://127.0.0.1:8765/v1/realtime";
    [Tooltip("The server's token (server.token); empty if it runs without one on loopback")]
    public string token = "";
    public bool connectOnStart = true;

    [Header("Microphone")]
    [Tooltip("Microphone device name; empty = the default microphone")]
    public string microphoneDevice = "";
    [Tooltip("On: the server's VAD ends each turn. Off: call BeginTalking()/EndTalking()")]
    public bool handsFree = true;
    [Tooltip("Silence that ends a turn in hands-free mode, in ms")]
    public int silenceDurationMs = 600;

    [Header("Answer")]
    [Tooltip("Plays the answer; one is added if empty")]
    public AudioSource output;
    [Tooltip("kids, general or educator")]
    public string audience = "general";
    [Tooltip("Catalog URL, slug or title of the dataset on the sphere (optional)")]
    public string showing = "";

    [Header("Events (main thread)")]
    public SosTextEvent onTranscript = new SosTextEvent();   // what the visitor said
    public SosTextEvent onAnswerText = new SosTextEvent();   // the answer so far
    public SosLinkEvent onLink = new SosLinkEvent();         // (url, title) of the catalog page
    public SosTextEvent onStatus = new SosTextEvent();       // listening / thinking / answering / errors

    const int MicRate = 16000;
    const int MaxBufferedSeconds = 120;

    ClientWebSocket socket;
    CancellationTokenSource cancel;
    readonly ConcurrentQueue<Action> mainThread = new ConcurrentQueue<Action>();
    readonly BlockingCollection<Frame> outgoing = new BlockingCollection<Frame>(256);
    readonly StringBuilder answer = new StringBuilder();

    AudioClip micClip;
    int micRate = MicRate;
    int micReadPos;
    bool talking;

    // Playback: PCM floats waiting for the audio thread; guarded by playLock.
    readonly object playLock = new object();
    readonly Queue<float> playBuffer = new Queue<float>();
    volatile bool acceptAudio;
    int outputRate = 22050;
    AudioClip playClip;

    struct Frame
    {
        public byte[] Data;
        public WebSocketMessageType Kind;
    }

#pragma warning disable 0649 // the fields below are filled by JsonUtility
    [Serializable] class LinkBody { public string url; public string title; }
    [Serializable] class ErrorBody { public string type; public string code; public string message; }
    [Serializable] class ResponseBody { public string id; public string status; public LinkBody sos_link; }
    [Serializable] class SessionBody { public int sos_binary_output_sample_rate; }
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

    // ------------------------------------------------------------------ Unity lifecycle
    void Start()
    {
        if (output == null) output = gameObject.AddComponent<AudioSource>();
        if (connectOnStart) Connect();
    }

    void Update()
    {
        while (mainThread.TryDequeue(out var action)) action();
        if (micClip != null && (handsFree || talking)) PumpMicrophone();
    }

    void OnDestroy() { Disconnect(); }

    // ------------------------------------------------------------------ public API
    /// <summary>Connects (again) to serverUrl and starts the microphone in hands-free mode.</summary>
    public async void Connect()
    {
        Disconnect();
        while (outgoing.TryTake(out _)) { } // nothing from an old connection goes to the new one
        cancel = new CancellationTokenSource();
        socket = new ClientWebSocket();
        if (!string.IsNullOrEmpty(token)) socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
        socket.Options.AddSubProtocol("realtime");
        try
        {
            onStatus.Invoke("connecting");
            await socket.ConnectAsync(new Uri(serverUrl), cancel.Token);
        }
        catch (Exception e)
        {
            onStatus.Invoke("cannot connect: " + e.Message);
            return;
        }
        var ct = cancel.Token;
        _ = Task.Run(() => SendLoop(ct));
        _ = Task.Run(() => ReceiveLoop(ct));
        SendSessionUpdate();
        StartMicrophone();
        onStatus.Invoke(handsFree ? "listening" : "ready");
    }

    public void Disconnect()
    {
        if (cancel != null) cancel.Cancel();
        if (socket != null)
        {
            try { socket.Abort(); } catch (Exception) { }
            socket.Dispose();
        }
        socket = null;
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
        micReadPos = Microphone.GetPosition(microphoneDevice);
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
        StopPlayback();
        SendJson("{\"type\":\"response.cancel\"}"); // an error event comes back if none is active
    }

    /// <summary>Switches between hands-free (server VAD) and push-to-talk.</summary>
    public void SetHandsFree(bool on)
    {
        handsFree = on;
        talking = false;
        SendSessionUpdate();
    }

    // ------------------------------------------------------------------ protocol
    void SendSessionUpdate()
    {
        string turnDetection = handsFree
            ? "{\"type\":\"server_vad\",\"silence_duration_ms\":" + silenceDurationMs + ",\"create_response\":true,\"interrupt_response\":true}"
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
                if (e.session != null && e.session.sos_binary_output_sample_rate > 0 &&
                    (playClip == null || e.session.sos_binary_output_sample_rate != outputRate))
                {
                    outputRate = e.session.sos_binary_output_sample_rate;
                    StartPlaybackClip();
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
                acceptAudio = true;
                onStatus.Invoke("answering");
                break;
            case "response.audio_transcript.delta":
            case "response.text.delta":
                answer.Append(e.delta);
                onAnswerText.Invoke(answer.ToString());
                break;
            case "response.done":
                if (e.response != null && e.response.sos_link != null && !string.IsNullOrEmpty(e.response.sos_link.url))
                    onLink.Invoke(e.response.sos_link.url, e.response.sos_link.title);
                onStatus.Invoke(e.response != null && e.response.status != "completed" ? "stopped" : (handsFree ? "listening" : "ready"));
                break;
            case "error":
                if (e.error != null && e.error.code != "response_cancel_not_active")
                    onStatus.Invoke("error: " + e.error.message);
                break;
        }
    }

    async Task ReceiveLoop(CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        var message = new System.IO.MemoryStream();
        try
        {
            while (!ct.IsCancellationRequested && socket != null && socket.State == WebSocketState.Open)
            {
                var result = await socket.ReceiveAsync(new ArraySegment<byte>(buffer), ct);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    string reason = result.CloseStatusDescription ?? "";
                    int code = result.CloseStatus.HasValue ? (int)result.CloseStatus.Value : 0;
                    mainThread.Enqueue(() => onStatus.Invoke("closed " + code + " " + reason));
                    return;
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
        }
        catch (OperationCanceledException) { }
        catch (Exception ex)
        {
            mainThread.Enqueue(() => onStatus.Invoke("disconnected: " + ex.Message));
        }
    }

    async Task SendLoop(CancellationToken ct)
    {
        try
        {
            // One SendAsync at a time: ClientWebSocket allows no concurrent sends.
            foreach (var frame in outgoing.GetConsumingEnumerable(ct))
                await socket.SendAsync(new ArraySegment<byte>(frame.Data), frame.Kind, true, ct);
        }
        catch (OperationCanceledException) { }
        catch (Exception ex)
        {
            mainThread.Enqueue(() => onStatus.Invoke("send failed: " + ex.Message));
        }
    }

    void SendJson(string json)
    {
        if (socket == null) return;
        outgoing.TryAdd(new Frame { Data = Encoding.UTF8.GetBytes(json), Kind = WebSocketMessageType.Text });
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
        Microphone.GetDeviceCaps(microphoneDevice, out int minRate, out int maxRate);
        micRate = (minRate == 0 && maxRate == 0) ? MicRate : Mathf.Clamp(MicRate, minRate, maxRate);
        micClip = Microphone.Start(microphoneDevice, true, 1, micRate);
        micReadPos = 0;
        if (micRate != MicRate) SendSessionUpdate(); // the server resamples to 16 kHz
    }

    // Sends the samples recorded since the last call as one PCM16 binary frame.
    void PumpMicrophone()
    {
        int pos = Microphone.GetPosition(microphoneDevice);
        int total = micClip.samples;
        int count = (pos - micReadPos + total) % total;
        if (count == 0 || socket == null) return;
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
        outgoing.TryAdd(new Frame { Data = bytes, Kind = WebSocketMessageType.Binary });
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

    // Unity's audio thread asks for the next samples of the streaming clip.
    void OnAudioRead(float[] data)
    {
        lock (playLock)
        {
            for (int i = 0; i < data.Length; i++)
                data[i] = playBuffer.Count > 0 ? playBuffer.Dequeue() : 0f;
        }
    }

    void StopPlayback()
    {
        acceptAudio = false;
        lock (playLock) playBuffer.Clear();
    }
}
