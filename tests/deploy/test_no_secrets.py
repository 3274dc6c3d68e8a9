"""No deployment file holds a secret: credentials come from the environment or Kubernetes Secrets.

The detector looks for password-, secret-, token- and key-like assignments with a literal value
(a `$` reference or nothing at all is fine) and for well-known credential formats."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_ASSIGNMENT = re.compile(
    r"(?i)[\w.-]*(?:password|passwd|secret|token|api[_-]?key|private[_-]?key|credentials?)"
    r"[\"']?[ \t]*[:=][ \t]*[\"']?(?P<value>[^\s\"'`,}]*)"
)
_FORMATS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub token
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),  # Slack token
]
_REFERENCE = ("$", "<")  # ${VAR}, $VAR, $(command), <placeholder>


def findings(text: str) -> list[str]:
    found = []
    for match in _ASSIGNMENT.finditer(text):
        value = match.group("value")
        if value and not value.startswith(_REFERENCE) and value.lower() not in {"null", "~"}:
            found.append(match.group(0))
    found += [m.group(0) for pattern in _FORMATS for m in pattern.finditer(text)]
    return found


def deployment_files() -> list[Path]:
    files = [p for p in (REPO / "deploy").rglob("*") if p.is_file()]
    return sorted([*files, REPO / ".dockerignore"])


@pytest.mark.parametrize("path", deployment_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_file_holds_no_secret(path: Path) -> None:
    assert findings(path.read_text(encoding="utf-8")) == []


def test_no_env_or_key_files_are_shipped() -> None:
    for path in deployment_files():
        assert path.suffix not in {".env", ".pem", ".key", ".p12", ".jks"}, path
        assert path.name != ".env", path


@pytest.mark.parametrize(
    "text",
    [
        "password: hunter2",
        "SHOPGUIDE_KAFKA_SASL_PASSWORD=s3cr3t-value",
        '"api_key": "abcd1234"',
        "GF_SECURITY_ADMIN_PASSWORD: admin",
        "  token = 'eyJhbGciOi'",
        "-----BEGIN RSA PRIVATE KEY-----",
        "aws_access_key_id AKIAABCDEFGHIJKLMNOP",
    ],
)
def test_detector_flags_literal_secrets(text: str) -> None:
    assert findings(text)


@pytest.mark.parametrize(
    "text",
    [
        "GF_SECURITY_ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD:?set it}",
        "  SHOPGUIDE_KAFKA_SASL_PASSWORD:\n  SHOPGUIDE_KAFKA_SSL_CAFILE:",
        '--from-literal=SHOPGUIDE_KAFKA_SASL_PASSWORD="$KAFKA_PASSWORD"',
        "secretName: shopguide-kafka-tls",
        "- secretRef:\n    name: shopguide-kafka",
    ],
)
def test_detector_accepts_references(text: str) -> None:
    assert findings(text) == []
