"""Secrets never reach a report: known secret values (kubeconfig tokens and keys,
Harbor password, AWS secret) and secret-shaped text are redacted everywhere."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from seatrials import kubeconfig

REDACTED = "[REDACTED]"
# Each secret-shaped pattern after the text it cannot match without, looked for in the lowered text as plain
# substrings: a text with none of a pattern's clues is not searched by it. One case-insensitive regex of every
# clue, then every pattern over any text with a URL, took 16 s over the 100 MB of reports of 500 failing nodes.
SECRET_PATTERNS = [
    (("private key",), re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)),
    (("bearer",), re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")),
    (("passw", "secret", "token", "client-key-data"),
     re.compile(r"(?i)((?:password|passwd|secret|token|client-key-data)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{4,}")),
    (("akia", "asia"), re.compile(r"(?<![A-Z0-9])(AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")),
    (("://",), re.compile(r"(://[^/\s:@]+:)[^@\s/]+(@)")),
]


def known_secrets(state) -> list[str]:
    values = list(state.settings.extra_secrets)
    if state.cluster is not None:
        values += kubeconfig.secrets(state.cluster.kubeconfig)
    for url in (state.settings.harbor_url, state.settings.harbor_registry):
        password = urlsplit(url).password if url else None
        values += [password] if password else []
    return [v for v in values if v and len(v) >= 4]


def redact(text: str, secrets: list[str] = ()) -> str:
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    lowered = text.lower()
    for clues, pattern in SECRET_PATTERNS:
        if any(clue in lowered for clue in clues):
            text = pattern.sub(lambda m: (m.group(1) if m.groups() and m.group(1) else "") + REDACTED
                               + (m.group(2) if m.re.groups >= 2 and m.group(2) else ""), text)
    return text


def redact_lines(lines: list[str], secrets: list[str] = ()) -> list[str]:
    """Each line redacted; first one look over them all, as a failure at scale lists hundreds of targets."""
    joined = "\n".join(lines)
    if redact(joined, secrets) == joined:
        return list(lines)
    return [redact(line, secrets) for line in lines]


def redact_files(paths: list[Path], secrets: list[str]) -> None:
    """Every text file of the reports, rewritten without the run's secrets (whatever path a message took)."""
    files = [f for p in paths if p and p.exists() for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    for f in files:
        try:
            text = f.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        clean = redact(text, secrets)
        if clean != text:
            f.write_text(clean)
