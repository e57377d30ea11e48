// Kiosk sample: wires SosVoiceClient's events to on-screen text (built-in TextMesh, so the
// sample needs no UI package), push-to-talk on the space bar, and the catalog link on L.
// See README.md next to this file for the scene to build around it.
using UnityEngine;

namespace SosVoice.Samples
{
    public class SosVoiceKioskSample : MonoBehaviour
    {
        public SosVoiceClient client;
        public TextMesh statusText;
        public TextMesh questionText;
        public TextMesh answerText;
        public TextMesh sphereText;
        [Tooltip("Shown while the answer is being spoken (e.g. a glowing ring around the sphere)")]
        public GameObject speakingIndicator;

        string lastLink = "";

        void OnEnable()
        {
            client.onStatus.AddListener(OnStatus);
            client.onTranscript.AddListener(OnTranscript);
            client.onAnswerText.AddListener(OnAnswer);
            client.onLink.AddListener(OnLink);
            client.onShowing.AddListener(OnShowing);
            client.onSpeakingStarted.AddListener(OnSpeakingStarted);
            client.onSpeakingEnded.AddListener(OnSpeakingEnded);
            if (speakingIndicator != null) speakingIndicator.SetActive(false);
            // The operator key never lives in the scene: read it from wherever the installation
            // keeps it (here the environment; PlayerPrefs set by a provisioning screen also works).
            string key = System.Environment.GetEnvironmentVariable("SOS_VOICE_OPERATOR_KEY");
            if (!string.IsNullOrEmpty(key)) client.SetOperatorKey(key);
        }

        void OnDisable()
        {
            client.onStatus.RemoveListener(OnStatus);
            client.onTranscript.RemoveListener(OnTranscript);
            client.onAnswerText.RemoveListener(OnAnswer);
            client.onLink.RemoveListener(OnLink);
            client.onShowing.RemoveListener(OnShowing);
            client.onSpeakingStarted.RemoveListener(OnSpeakingStarted);
            client.onSpeakingEnded.RemoveListener(OnSpeakingEnded);
        }

        void Update()
        {
            if (!client.handsFree)
            {
                if (Input.GetKeyDown(KeyCode.Space)) client.BeginTalking();
                if (Input.GetKeyUp(KeyCode.Space)) client.EndTalking();
            }
            if (Input.GetKeyDown(KeyCode.Escape)) client.Interrupt();
            if (Input.GetKeyDown(KeyCode.L) && lastLink.Length > 0) Application.OpenURL(lastLink);
        }

        void OnStatus(string status) { if (statusText != null) statusText.text = status; }

        void OnTranscript(string text)
        {
            if (questionText != null) questionText.text = "You asked: " + text;
            if (answerText != null) answerText.text = "";
            lastLink = "";
        }

        void OnAnswer(string text) { if (answerText != null) answerText.text = text; }

        void OnLink(string url, string title)
        {
            lastLink = url;
            if (answerText != null) answerText.text += "\n\nMore: " + title + " (press L)";
        }

        void OnShowing(string url, string title)
        {
            if (sphereText != null) sphereText.text = url.Length > 0 ? "Now on the sphere: " + title : "";
        }

        void OnSpeakingStarted() { if (speakingIndicator != null) speakingIndicator.SetActive(true); }

        void OnSpeakingEnded() { if (speakingIndicator != null) speakingIndicator.SetActive(false); }
    }
}
