// Minimal stand-ins for the UnityEngine API that the package (Runtime/) and its sample
// (Samples~/) use, so both can be compile-checked with Mono's C# compiler on a machine without
// Unity (see check.sh). Signatures follow Unity 2021.3's; bodies do nothing. Not for Unity: do
// not copy this file into a Unity project.
using System;

namespace UnityEngine
{
    public class Object { }
    public class Component : Object { public GameObject gameObject { get { return null; } } }
    public class Behaviour : Component { }
    public class MonoBehaviour : Behaviour { }
    public class GameObject : Object
    {
        public T AddComponent<T>() where T : Component { return default(T); }
        public void SetActive(bool value) { }
    }
    public class AudioClip : Object
    {
        public delegate void PCMReaderCallback(float[] data);
        public int samples { get { return 0; } }
        public bool GetData(float[] data, int offsetSamples) { return true; }
        public static AudioClip Create(string name, int lengthSamples, int channels, int frequency,
            bool stream, PCMReaderCallback pcmreadercallback) { return null; }
    }
    public class AudioSource : Behaviour
    {
        public AudioClip clip;
        public bool loop;
        public void Play() { }
    }
    public class TextMesh : Component { public string text { get; set; } }
    public static class Microphone
    {
        public static AudioClip Start(string deviceName, bool loop, int lengthSec, int frequency) { return null; }
        public static void End(string deviceName) { }
        public static int GetPosition(string deviceName) { return 0; }
        public static void GetDeviceCaps(string deviceName, out int minFreq, out int maxFreq) { minFreq = maxFreq = 0; }
    }
    public static class Mathf
    {
        public static int Clamp(int value, int min, int max) { return Math.Min(Math.Max(value, min), max); }
        public static float Clamp(float value, float min, float max) { return Math.Min(Math.Max(value, min), max); }
    }
    public enum KeyCode { None = 0, Space = 32, Escape = 27, L = 108 }
    public static class Input
    {
        public static bool GetKeyDown(KeyCode key) { return false; }
        public static bool GetKeyUp(KeyCode key) { return false; }
    }
    public static class Application { public static void OpenURL(string url) { } }
    public static class JsonUtility { public static T FromJson<T>(string json) { return default(T); } }
    [AttributeUsage(AttributeTargets.Field)] public class HeaderAttribute : Attribute { public HeaderAttribute(string header) { } }
    [AttributeUsage(AttributeTargets.Field)] public class TooltipAttribute : Attribute { public TooltipAttribute(string tooltip) { } }
}

namespace UnityEngine.Events
{
    public abstract class UnityEventBase { }
    public class UnityEvent : UnityEventBase
    {
        public void AddListener(Action call) { }
        public void RemoveListener(Action call) { }
        public void Invoke() { }
    }
    public class UnityEvent<T0> : UnityEventBase
    {
        public void AddListener(Action<T0> call) { }
        public void RemoveListener(Action<T0> call) { }
        public void Invoke(T0 arg0) { }
    }
    public class UnityEvent<T0, T1> : UnityEventBase
    {
        public void AddListener(Action<T0, T1> call) { }
        public void RemoveListener(Action<T0, T1> call) { }
        public void Invoke(T0 arg0, T1 arg1) { }
    }
}
