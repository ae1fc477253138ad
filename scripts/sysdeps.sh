#!/usr/bin/env bash
# Optional native libraries for Opus and sound cards. The stack runs without them
# (G.711, file/tone/null audio); this only makes Opus and PortAudio available.
set -u
missing=()
for pkg in libopus0 libportaudio2; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  echo "installing ${missing[*]} (apt-get)"
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/sysdeps-apt.log 2>&1; then
    apt-get update -q >/dev/null 2>&1
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/sysdeps-apt.log 2>&1 \
      || echo "note: could not install ${missing[*]} (see /tmp/sysdeps-apt.log); continuing with G.711 and file/null audio"
  fi
else
  echo "note: optional packages missing: ${missing[*]} (sudo apt-get install ${missing[*]});"
  echo "      continuing without them: G.711 only, file/tone/null audio"
fi
exit 0
