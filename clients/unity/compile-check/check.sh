#!/bin/sh
# Compile-check SosVoiceClient.cs against UnityStubs.cs with Mono's C# compiler (apt mono-mcs).
# This catches syntax and type errors outside Unity; it does not run anything.
set -e
cd "$(dirname "$0")"
mcs -langversion:7.2 -nologo -target:library -out:/tmp/SosVoiceClient.check.dll \
    -r:System.dll -r:System.Core.dll ../SosVoiceClient.cs UnityStubs.cs
echo "SosVoiceClient.cs compiles against the UnityEngine stubs"
