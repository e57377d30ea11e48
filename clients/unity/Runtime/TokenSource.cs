// Short-lived session tokens, so no long-lived secret is ever baked into a build.
//
// The operator's key stays on the operator's side: it is given to the app at run time
// (SosVoiceClient.SetOperatorKey from a provisioning screen or the platform's keystore, or the
// SOS_VOICE_OPERATOR_KEY environment variable on a desktop installation), and the client trades
// it for a token that expires in minutes, like the hosted Realtime API's ephemeral keys:
//
//   POST {tokenEndpoint}                  e.g. http://SERVER:8765/session-tokens
//   Authorization: Bearer OPERATOR_KEY
//   Content-Type: application/json
//   {}
//   -> 200 {"token": "...", "expires_at": 1767225600}     (Unix seconds)
//
// With no operator key the request goes without Authorization: for an endpoint of the
// operator's own backend that vouches for the device its own way and mints with the key it
// keeps (the hosted API's pattern), so the device never holds the operator key at all.
//
// The WebSocket presents the token when it connects; the server checks it only then, so a
// token has to be valid at connect time, not for the whole session. A fresh one is minted for
// every (re)connection that finds the cached one within a minute of expiring, and after the
// server refused one (close 1008).
using System;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using UnityEngine;

namespace SosVoice
{
    /// <summary>A session token and when it stops being accepted.</summary>
    public sealed class SessionToken
    {
        public readonly string Value;
        public readonly DateTimeOffset ExpiresAt;

        public SessionToken(string value, DateTimeOffset expiresAt)
        {
            Value = value;
            ExpiresAt = expiresAt;
        }

        public bool FreshFor(TimeSpan margin) { return DateTimeOffset.UtcNow + margin < ExpiresAt; }
    }

    /// <summary>The mint endpoint answered with something other than a token.</summary>
    public sealed class TokenMintException : Exception
    {
        public readonly int Status;
        public TokenMintException(int status, string message) : base(message) { Status = status; }
    }

    /// <summary>Mints tokens at a URL with the operator's key, and caches the last one.</summary>
    public sealed class TokenMinter
    {
        static readonly TimeSpan Margin = TimeSpan.FromSeconds(60);
        static readonly HttpClient Http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };

        readonly string endpoint;
        readonly Func<string> operatorKey;
        SessionToken cached;

#pragma warning disable 0649 // filled by JsonUtility
        [Serializable] class MintReply { public string token; public long expires_at; }
#pragma warning restore 0649

        public TokenMinter(string endpoint, Func<string> operatorKey)
        {
            if (string.IsNullOrEmpty(endpoint)) throw new ArgumentException("a token endpoint URL is needed");
            this.endpoint = endpoint;
            this.operatorKey = operatorKey;
        }

        /// <summary>Forget the cached token (the server refused it).</summary>
        public void Invalidate() { cached = null; }

        public async Task<SessionToken> GetAsync(CancellationToken ct)
        {
            var token = cached;
            if (token != null && token.FreshFor(Margin)) return token;
            string key = operatorKey != null ? operatorKey() : null;
            using (var request = new HttpRequestMessage(HttpMethod.Post, endpoint))
            {
                if (!string.IsNullOrEmpty(key))
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
                request.Content = new StringContent("{}", Encoding.UTF8, "application/json");
                using (var response = await Http.SendAsync(request, ct).ConfigureAwait(false))
                {
                    string body = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
                    int status = (int)response.StatusCode;
                    if (status == 401)
                        throw new TokenMintException(status, string.IsNullOrEmpty(key)
                            ? "token endpoint: HTTP 401, it needs the operator key: SetOperatorKey() or SOS_VOICE_OPERATOR_KEY"
                            : "token endpoint: HTTP 401, the operator key was refused");
                    if (!response.IsSuccessStatusCode)
                        throw new TokenMintException(status, "token endpoint: HTTP " + status);
                    cached = Parse(body);
                    return cached;
                }
            }
        }

        /// <summary>{"token": "...", "expires_at": UNIX_SECONDS} -> a SessionToken.</summary>
        public static SessionToken Parse(string json)
        {
            MintReply reply;
            try { reply = JsonUtility.FromJson<MintReply>(json); }
            catch (Exception e) { throw new TokenMintException(200, "token endpoint: not JSON: " + e.Message); }
            if (reply == null || string.IsNullOrEmpty(reply.token) || reply.expires_at <= 0)
                throw new TokenMintException(200, "token endpoint: expected {\"token\": ..., \"expires_at\": ...}");
            return new SessionToken(reply.token, DateTimeOffset.FromUnixTimeSeconds(reply.expires_at));
        }
    }
}
