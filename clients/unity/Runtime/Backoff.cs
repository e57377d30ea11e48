// Backoff: how long to wait before the next reconnection attempt.
//
// Exponential (initial, x2, ... up to max) with +-25% jitter, so a room full of headsets that
// lost the same Wi-Fi access point do not all knock on the server in the same instant when it
// comes back. Reset() after a connection that stayed up.
using System;

namespace SosVoice
{
    public sealed class Backoff
    {
        readonly double initialSeconds;
        readonly double maxSeconds;
        readonly Random random;
        int attempt;

        public Backoff(double initialSeconds = 0.5, double maxSeconds = 30.0, int seed = 0)
        {
            if (initialSeconds <= 0 || maxSeconds < initialSeconds)
                throw new ArgumentException("need 0 < initialSeconds <= maxSeconds");
            this.initialSeconds = initialSeconds;
            this.maxSeconds = maxSeconds;
            random = seed == 0 ? new Random() : new Random(seed);
        }

        /// <summary>How many delays were handed out since the last Reset().</summary>
        public int Attempt { get { return attempt; } }

        /// <summary>The next delay: initial * 2^attempt, capped at max, jittered by +-25%.</summary>
        public TimeSpan Next()
        {
            double seconds = Math.Min(maxSeconds, initialSeconds * Math.Pow(2, Math.Min(attempt, 30)));
            attempt++;
            double jitter = 0.75 + 0.5 * random.NextDouble();
            return TimeSpan.FromSeconds(Math.Min(maxSeconds, seconds * jitter));
        }

        public void Reset() { attempt = 0; }
    }
}
