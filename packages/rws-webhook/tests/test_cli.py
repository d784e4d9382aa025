"""The rws-webhook command, called in-process and as the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rws.webhook import StandardWebhooks
from rws.webhook.cli import main, parse_headers

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "webhook"
GITHUB_ARGS = [
    "--scheme",
    "github",
    "--secret-file",
    str(EXAMPLES / "github.secret"),
    "--headers",
    str(EXAMPLES / "github-headers.txt"),
]


def test_verify_published_example(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["verify", *GITHUB_ARGS, "--body", str(EXAMPLES / "github-payload.txt")])
    out = capsys.readouterr().out
    assert code == 0
    assert out == "verified: scheme=github key=0 id=72d3162e-cc78-11e3-81ab-4c9367dc0958\n"


def test_verify_rejects_tampered_body(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = tmp_path / "body"
    body.write_bytes(b"Hello, World?")
    assert main(["verify", *GITHUB_ARGS, "--body", str(body)]) == 1
    assert "rejected: invalid_signature" in capsys.readouterr().err


def test_sign_then_verify_with_env_secrets_and_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEW_SECRET", "whsec_new")
    monkeypatch.setenv("OLD_SECRET", "whsec_old")
    body = tmp_path / "event.json"
    body.write_bytes(b'{"id": "evt_1"}')
    common = ["--scheme", "stripe", "--body", str(body)]
    assert (
        main(
            [
                "sign",
                *common,
                "--secret-env",
                "NEW_SECRET",
                "--secret-env",
                "OLD_SECRET",
                "--timestamp",
                "1700000000",
            ]
        )
        == 0
    )
    headers = tmp_path / "headers.txt"
    headers.write_text(capsys.readouterr().out)
    assert headers.read_text().count("v1=") == 2
    args = ["verify", *common, "--secret-env", "OLD_SECRET", "--headers", str(headers)]
    assert main([*args, "--now", "1700000100"]) == 0
    assert "key=0 timestamp=1700000000" in capsys.readouterr().out
    assert main([*args, "--now", "1700009999"]) == 1
    assert "timestamp_out_of_range" in capsys.readouterr().err


def test_json_headers_file_and_standard_scheme(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = StandardWebhooks.generate_secret()
    (tmp_path / "secret").write_text(secret + "\n")
    (tmp_path / "body").write_bytes(b"{}")
    signed = StandardWebhooks(secret).sign(b"{}", message_id="msg_9", timestamp=1_700_000_000)
    (tmp_path / "headers.json").write_text(json.dumps(signed))
    code = main(
        [
            "verify",
            "--scheme",
            "standard",
            "--secret-file",
            str(tmp_path / "secret"),
            "--body",
            str(tmp_path / "body"),
            "--headers",
            str(tmp_path / "headers.json"),
            "--now",
            "1700000000",
        ]
    )
    assert code == 0
    assert (
        capsys.readouterr().out == "verified: scheme=standard key=0 timestamp=1700000000 id=msg_9\n"
    )


def test_generic_hmac_scheme(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "secret").write_text("k")
    (tmp_path / "body").write_bytes(b"payload")
    options = [
        "--scheme",
        "hmac",
        "--secret-file",
        str(tmp_path / "secret"),
        "--body",
        str(tmp_path / "body"),
        "--header",
        "X-Sig",
        "--encoding",
        "base64",
    ]
    assert main(["sign", *options]) == 0
    (tmp_path / "headers").write_text(capsys.readouterr().out)
    assert main(["verify", *options, "--headers", str(tmp_path / "headers")]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["verify", "--scheme", "github", "--body", "x", "--headers", "y"], "--secret-file"),
        (
            [
                "verify",
                "--scheme",
                "github",
                "--secret-env",
                "RWS_UNSET_VAR_X",
                "--body",
                "x",
                "--headers",
                "y",
            ],
            "RWS_UNSET_VAR_X is not set",
        ),
        (
            [
                "verify",
                "--scheme",
                "hmac",
                "--secret-file",
                __file__,
                "--body",
                __file__,
                "--headers",
                __file__,
            ],
            "--header",
        ),
        (["verify", "--scheme", "nope"], "invalid choice"),
        (["verify", *GITHUB_ARGS, "--body", "/nonexistent/body"], "cannot read"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_sign_option_a_scheme_does_not_use(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "sign",
        "--scheme",
        "github",
        "--secret-file",
        str(EXAMPLES / "github.secret"),
        "--body",
        str(EXAMPLES / "github-payload.txt"),
        "--message-id",
        "m",
    ]
    assert main(argv) == 2
    assert "do not use message_id" in capsys.readouterr().err


def test_parse_headers_formats() -> None:
    text = "HTTP/1.1 200 OK\nX-A: 1\n\n# comment\nx-b:  two words \n"
    assert parse_headers(text) == [("X-A", "1"), ("x-b", "two words")]


def test_schemes_lists_every_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemes"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["github", "stripe", "shopify", "slack", "standard", "twilio", "hmac"]


def test_console_script_and_module_entry_points(tmp_path: Path) -> None:
    body = EXAMPLES / "github-payload.txt"
    script = shutil.which("rws-webhook", path=str(Path(sys.executable).parent))
    assert script is not None, "the rws-webhook console script is not installed"
    for command in ([script], [sys.executable, "-m", "rws.webhook"]):
        done = subprocess.run(
            [*command, "verify", *GITHUB_ARGS, "--body", "-"],
            input=body.read_bytes(),
            capture_output=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        done = subprocess.run(
            [*command, "verify", *GITHUB_ARGS, "--body", "-"],
            input=b"tampered",
            capture_output=True,
            check=False,
        )
        assert done.returncode == 1
        assert b"invalid_signature" in done.stderr


def test_rws_commands_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="rws.commands") if e.name == "webhook"]
    assert entry.load() is main
    assert entry.dist is not None and entry.dist.name == "rws-webhook"
