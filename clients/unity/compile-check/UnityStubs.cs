// Minimal stand-ins for the UnityEngine API that SosVoiceClient.cs uses, so the client can be
// compile-checked with Mono's mcs on a machine without Unity (see check.sh). Not for Unity:
// do not copy this file into a Unity project.
using System;

namespace UnityEngine
{
    public class Object { }
    public class Component : Object { public GameObject gameObject => null; }
    public class Behaviour : Component { }
    public class MonoBehaviour : Behaviour { }
    public class GameObject : Object { public T AddComponent<T>() where T : Component => default; }
    public class AudioClip : Object
    {
        public delegate void PCMReaderCallback(float[] data);
        public int samples => 0;
        public bool GetData(float[] data, int offsetSamples) => true;
        public static AudioClip Create(string name, int lengthSamples, int channels, int frequency,
            bool stream, PCMReaderCallback pcmreadercallback) => null;
    }
    public class AudioSource : Behaviour
    {
        public AudioClip clip;
        public bool loop;
        public void Play() { }
    }
    public static class Microphone
    {
        public static AudioClip Start(string deviceName, bool loop, int lengthSec, int frequency) => null;
        public static void End(string deviceName) { }
        public static int GetPosition(string deviceName) => 0;
        public static void GetDeviceCaps(string deviceName, out int minFreq, out int maxFreq) { minFreq = maxFreq = 0; }
    }
    public static class Mathf
    {
        public static int Clamp(int value, int min, int max) => Math.Min(Math.Max(value, min), max);
        public static float Clamp(float value, float min, float max) => Math.Min(Math.Max(value, min), max);
    }
    public static class JsonUtility { public static T FromJson<T>(string json) => default; }
    [AttributeUsage(AttributeTargets.Field)] public class HeaderAttribute : Attribute { public HeaderAttribute(string header) { } }
    [AttributeUsage(AttributeTargets.Field)] public class TooltipAttribute : Attribute { public TooltipAttribute(string tooltip) { } }
}

namespace UnityEngine.Events
{
    public abstract class UnityEventBase { }
    public class UnityEvent<T0> : UnityEventBase { public void Invoke(T0 arg0) { } }
    public class UnityEvent<T0, T1> : UnityEventBase { public void Invoke(T0 arg0, T1 arg1) { } }
}
