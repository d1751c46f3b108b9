"""One frame walked through the VPC filter's iptables rules as the kernel walks them: FORWARD (policy
DROP), jumps, RETURN, first verdict wins. It knows the matches the filter writes (physdev, addresses
with `!`, protocol, ports, conntrack state, comments) and refuses any other, so a rule it cannot read
fails the test instead of passing silently."""

from __future__ import annotations

import functools
import ipaddress
import shlex
from dataclasses import dataclass

PROTOCOLS = {"tcp": "6", "udp": "17", "icmp": "1"}


@dataclass(frozen=True)
class Frame:
    port_in: str  # the bridge port it enters by (p-<node>, p-host)
    port_out: str  # and the one it leaves by
    src: str
    dst: str
    protocol: str = "tcp"
    dport: int = 0
    new: bool = True  # conntrack: a new connection, or a packet of an established one

    def reply(self) -> Frame:
        return Frame(self.port_out, self.port_in, self.dst, self.src, self.protocol, 40000, new=False)


@functools.cache
def parse(rules: str) -> dict[str, list[list[str]]]:
    """Chain name -> its rules' tokens, from iptables-restore text."""
    chains: dict[str, list[list[str]]] = {}
    for line in rules.splitlines():
        if line.startswith("-A "):
            tokens = shlex.split(line)
            chains.setdefault(tokens[1], []).append(tokens[2:])
    return chains


def walk(rules: str | list[str], frame: Frame) -> tuple[str, int]:
    """ACCEPT or DROP, and how many rules the frame was matched against on the way."""
    walked = [0]
    text = rules if isinstance(rules, str) else "\n".join(rules)
    return _walk(parse(text), "FORWARD", frame, walked) or "DROP", walked[0]


def verdict(rules: str | list[str], frame: Frame) -> str:
    return walk(rules, frame)[0]


def _walk(chains: dict, chain: str, frame: Frame, walked: list[int]) -> str | None:
    for rule in chains.get(chain, []):
        walked[0] += 1
        jump = rule.index("-j")
        if not _matches(rule[:jump], frame):
            continue
        target = rule[jump + 1]
        if target in ("ACCEPT", "DROP"):
            return target
        if target == "RETURN":
            return None
        if decided := _walk(chains, target, frame, walked):
            return decided
    return None


def _matches(tokens: list[str], frame: Frame) -> bool:
    negate, i = False, 0
    while i < len(tokens):
        option = tokens[i]
        if option == "!":
            negate, i = True, i + 1
            continue
        if option in ("-m", "--comment"):
            i += 2
            continue
        if option == "--physdev-is-bridged":
            matched, i = True, i + 1
        else:
            matched, i = _test(option, tokens[i + 1], frame), i + 2
        if matched == negate:
            return False
        negate = False
    return True


def _test(option: str, value: str, frame: Frame) -> bool:
    if option in ("--physdev-in", "--physdev-out"):
        return value == (frame.port_in if option == "--physdev-in" else frame.port_out)
    if option in ("-s", "-d"):
        address = frame.src if option == "-s" else frame.dst
        return ipaddress.ip_address(address) in ipaddress.ip_network(value)
    if option == "-p":
        return PROTOCOLS.get(value, value) == PROTOCOLS.get(frame.protocol, frame.protocol)
    if option == "--dport":
        low, _, high = value.partition(":")
        return int(low) <= frame.dport <= int(high or low)
    if option == "--dports":
        return str(frame.dport) in value.split(",")
    if option == "--ctstate":
        return ("NEW" if frame.new else "ESTABLISHED") in value.split(",")
    if option == "--icmp-type":
        return True
    raise AssertionError(f"the frame walker does not know the match {option} {value}")
