#!/usr/bin/env bash
# Installs the real interop peers the test suite drives: sipp, Kamailio (+websocket, tls,
# autheph), baresip, coturn, tshark, OpenSSL, nftables/iproute2, Chromium + JsSIP (npm).
# Idempotent and quiet when everything is present.
# Root: installs with apt-get/npm. Not root: prints what is missing and carries on
# (the interop tests then skip locally; under CI=true they fail).
set -u
cd "$(dirname "$0")"
need_apt=()
for bin_pkg in sipp:sip-tester kamailio:kamailio baresip:baresip turnserver:coturn tshark:tshark \
               openssl:openssl nft:nftables ip:iproute2 chromium:chromium node:nodejs npm:npm ss:iproute2; do
  bin=${bin_pkg%%:*}; pkg=${bin_pkg#*:}
  command -v "$bin" >/dev/null 2>&1 || need_apt+=("$pkg")
done
for pkg in kamailio-websocket-modules kamailio-tls-modules kamailio-autheph-modules baresip-core; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  mapfile -t need_apt < <(printf '%s\n' "${need_apt[@]}" | sort -u)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    # services must not auto-start on install
    [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
    echo "interop peers: installing ${need_apt[*]}"
    apt-get update -q >/tmp/interop-apt.log 2>&1
    # node/npm may already exist outside Debian's packages: never fight them
    pkgs=()
    for p in "${need_apt[@]}"; do
      case $p in nodejs|npm) command -v node >/dev/null && command -v npm >/dev/null && continue;; esac
      pkgs+=("$p")
    done
    apt-get install -y -q --no-install-recommends "${pkgs[@]}" >>/tmp/interop-apt.log 2>&1 \
      || { echo "interop peers: apt-get failed (see /tmp/interop-apt.log)"; tail -5 /tmp/interop-apt.log; }
  else
    echo "interop peers missing: ${need_apt[*]} (as root: apt-get install ${need_apt[*]}); interop tests will skip"
  fi
fi
# JsSIP bundle for the Chromium tests (npm package ships no dist/: bundle with esbuild)
if command -v npm >/dev/null 2>&1 && [ ! -s jssip/www/jssip.bundle.js ]; then
  mkdir -p jssip/www
  (cd jssip && npm install --no-audit --no-fund --loglevel=error >/tmp/interop-npm.log 2>&1 \
     && npx esbuild node_modules/jssip/lib/JsSIP.js --bundle --format=iife --global-name=JsSIP \
          --outfile=www/jssip.bundle.js --log-level=warning >>/tmp/interop-npm.log 2>&1) \
    || { echo "interop peers: npm install of JsSIP failed (see /tmp/interop-npm.log)"; tail -5 /tmp/interop-npm.log; }
fi
exit 0
