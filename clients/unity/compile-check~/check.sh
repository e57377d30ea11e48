#!/bin/sh
# Compile-check the package (Runtime/) and its sample (Samples~/) against UnityStubs.cs with
# Mono's C# compiler, mcs (apt: mono-mcs, plus libmono-system-net-http4.0-cil for HttpClient).
# Warnings are errors. This catches syntax, type and API-use errors outside Unity; it runs
# nothing. Usage: check.sh [OUTPUT_DIR]   (default: a temporary folder, removed afterwards)
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
package="$(dirname "$here")"
out="${1:-}"
if [ -z "$out" ]; then
    out="$(mktemp -d)"
    trap 'rm -rf "$out"' EXIT
fi
mcs -langversion:7.2 -nologo -warnaserror -target:library -out:"$out/SosVoice.Runtime.dll" \
    -r:System.dll -r:System.Core.dll -r:System.Net.Http.dll \
    "$package"/Runtime/*.cs "$here/UnityStubs.cs"
mcs -langversion:7.2 -nologo -warnaserror -target:library -out:"$out/SosVoice.Samples.dll" \
    -r:System.dll -r:"$out/SosVoice.Runtime.dll" \
    "$package"/Samples~/*/*.cs
echo "the Unity package and its sample compile against the UnityEngine stubs"
