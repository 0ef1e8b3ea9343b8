#!/usr/bin/env bash
# Install the independent peers the test suite runs against (Debian packages).
# Idempotent: does nothing when every binary is already on PATH.
set -euo pipefail
declare -A pkg_of=(
  [sipp]=sip-tester
  [kamailio]=kamailio
  [turnserver]=coturn
  [baresip]="baresip-core baresip"
  [iptables]=iptables
  [ip]=iproute2
  [tshark]=tshark
  [dnsmasq]=dnsmasq-base
)
missing=()
for bin in "${!pkg_of[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=(${pkg_of[$bin]})
done
# baresip modules live in a separate package on some releases: check for ice.so too.
if command -v baresip >/dev/null 2>&1 && ! ls /usr/lib/baresip/modules/ice.so >/dev/null 2>&1; then
  missing+=(baresip)
fi
# RFC 5626 outbound tests load Kamailio's outbound module (a separate package)
if command -v kamailio >/dev/null 2>&1 && ! ls /usr/lib/*/kamailio/modules/outbound.so >/dev/null 2>&1; then
  missing+=(kamailio-outbound-modules)
elif ! command -v kamailio >/dev/null 2>&1; then
  missing+=(kamailio-outbound-modules)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing peers: ${missing[*]}" >&2
$SUDO apt-get update -qq
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections || true
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
