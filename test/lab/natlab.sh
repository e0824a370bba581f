#!/usr/bin/env bash
# natlab.sh up|down PREFIX — a small internet inside this machine, made of network namespaces named PREFIX-*, so
# that two runs (two checkouts, two CI jobs) never share one. Documentation address ranges only, never a real host:
#
#   PREFIX-pub    198.51.100.1/24   the "internet": a bridge holding the public host (relays run here) and the
#                                   gateways' WAN sides
#   PREFIX-gw1    198.51.100.2      home 1's NAT gateway, LAN 203.0.113.1/28: masquerade that keeps source ports
#                                   ("persistent": the same inside address maps to the same outside one), the NAT
#                                   hole punching can get through
#   PREFIX-gw2    198.51.100.3      home 2's NAT gateway, LAN 203.0.113.17/28: masquerade with fully random ports
#   PREFIX-home1  203.0.113.2       a host in home 1
#   PREFIX-lan1   203.0.113.3       its neighbour on home 1's LAN (multicast on, for mDNS)
#   PREFIX-home2  203.0.113.18      a host in home 2
#
# Each gateway forwards what its LAN sends out, the answers to it, and traffic within the LAN (bridged frames pass
# the forward hook where br_netfilter is loaded), nothing else: nobody outside reaches a home host first. Interfaces are created inside their namespaces (never in the caller's), so names cannot clash.
# Run a command in one: ip netns exec PREFIX-home1 CMD. Needs root, iproute2 and nftables (installed when missing).
set -u
PREFIX=${2:-rdlab}
case "$PREFIX" in *[!a-z0-9]*|"") echo "natlab: PREFIX must be lowercase letters and digits"; exit 2 ;; esac
NS="$PREFIX-pub $PREFIX-gw1 $PREFIX-gw2 $PREFIX-home1 $PREFIX-home2 $PREFIX-lan1"

down() {
  for n in $NS; do ip netns del "$n" 2>/dev/null; done
  return 0
}

need_nft() {
  command -v nft >/dev/null && return 0
  # apt may be busy with another run: retry a few times.
  for _ in 1 2 3 4 5; do
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables) >/dev/null 2>&1 && return 0
    sleep 3
  done
  echo "natlab: cannot install nftables"
  return 1
}

up() {
  need_nft || return 1
  down
  for n in $NS; do ip netns add "$n" && ip -n "$n" link set lo up || return 1; done
  local pub="$PREFIX-pub"
  ip -n "$pub" link add br0 type bridge && ip -n "$pub" link set br0 up || return 1
  ip -n "$pub" addr add 198.51.100.1/24 dev br0
  for i in 1 2; do
    local gw="$PREFIX-gw$i"
    ip -n "$gw" link add wan type veth peer name "gw$i" netns "$pub" || return 1
    ip -n "$pub" link set "gw$i" master br0 && ip -n "$pub" link set "gw$i" up
    ip -n "$gw" addr add "198.51.100.$((i + 1))/24" dev wan && ip -n "$gw" link set wan up
    # No IGMP snooping: nothing on the LAN answers IGMP queries, and snooping would then drop mDNS.
    ip -n "$gw" link add lan type bridge mcast_snooping 0 && ip -n "$gw" link set lan up
    ip -n "$gw" addr add "203.0.113.$(((i - 1) * 16 + 1))/28" dev lan
    ip netns exec "$gw" sysctl -qw net.ipv4.ip_forward=1
    local masq="masquerade persistent"
    [ "$i" = 2 ] && masq="masquerade fully-random"
    ip netns exec "$gw" nft -f - <<NFT || return 1
table ip nat {
  chain post {
    type nat hook postrouting priority 100;
    oifname "wan" $masq
  }
}
table ip filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "lan" oifname "wan" accept
    iifname "lan" oifname "lan" accept
  }
}
NFT
  done
  attach() { # attach HOST GATEWAY IP ROUTER
    local ns=$1 gw=$2 ip=$3 router=$4
    local port="p${ns##*-}"
    ip -n "$ns" link add eth0 type veth peer name "$port" netns "$gw" || return 1
    ip -n "$gw" link set "$port" master lan && ip -n "$gw" link set "$port" up
    ip -n "$ns" addr add "$ip/28" dev eth0 && ip -n "$ns" link set eth0 multicast on && ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$router"
  }
  attach "$PREFIX-home1" "$PREFIX-gw1" 203.0.113.2 203.0.113.1 || return 1
  attach "$PREFIX-lan1" "$PREFIX-gw1" 203.0.113.3 203.0.113.1 || return 1
  attach "$PREFIX-home2" "$PREFIX-gw2" 203.0.113.18 203.0.113.17 || return 1
  return 0
}

case "${1:-}" in
  up) up || { down; exit 1; } ;;
  down) down ;;
  *) echo "usage: natlab.sh up|down [PREFIX]"; exit 2 ;;
esac
