"""Access log: exact formats, escaping against log injection, rotation, reopen, no lost lines."""

from __future__ import annotations

import asyncio
import calendar
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import pytest

from rws.http.server.access_log import (
    AccessLog,
    AccessRecord,
    format_combined,
    format_common,
    format_json,
)

# 10 Oct 2000 13:55:36 UTC, the moment in Apache's own log-format documentation.
APACHE_EPOCH = calendar.timegm((2000, 10, 10, 13, 55, 36, 0, 0, 0))

# A Combined line, with quoted fields that may hold backslash escapes but no bare quote.
Q = r'"((?:[^"\\]|\\.)*)"'
COMBINED_RE = re.compile(
    rf"^(\S+) (\S+) (\S+) \[([^\]]+)\] {Q} (\d{{3}}) (\d+|-) {Q} {Q}$"
)  # fmt: skip
LOGGER = "rws.http.server.access_log"


def make_record(**changes: Any) -> AccessRecord:
    record = AccessRecord(
        client_addr="127.0.0.1",
        client_port=51234,
        method="GET",
        target="/apache_pb.gif",
        http_version="1.0",
        status=200,
        response_bytes=2326,
        request_start=APACHE_EPOCH + 0.123,
        duration=0.0123456,
        referer="http://www.example.com/start.html",
        user_agent="Mozilla/4.08 [en] (Win98; I ;Nav)",
        scheme="http",
        host="www.example.com",
        user="frank",
        request_id="req-1",
    )
    return replace(record, **changes)


def numbered(index: int) -> AccessRecord:
    return make_record(target=f"/item/{index}")


def unescape(field: str) -> bytes:
    """Undo Apache's log escaping, to prove it loses nothing."""
    short = {"b": b"\b", "n": b"\n", "r": b"\r", "t": b"\t", "v": b"\v", "\\": b"\\", '"': b'"'}
    out = bytearray()
    for match in re.finditer(r"\\x([0-9a-f]{2})|\\(.)|([^\\]+)", field):
        hexa, char, plain = match.groups()
        if hexa is not None:
            out.append(int(hexa, 16))
        elif char is not None:
            out += short[char]
        else:
            out += plain.encode("ascii")
    return bytes(out)


def read_lines(path: Path) -> list[str]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "a file ends in the middle of a line"
    return data.decode("ascii").splitlines()


def item_numbers(lines: list[str]) -> list[int]:
    numbers = []
    for line in lines:
        match = COMBINED_RE.match(line)
        assert match is not None, f"not an intact Combined line: {line!r}"
        numbers.append(int(match.group(5).split()[1].rsplit("/", 1)[1]))
    return numbers


# -- formats -----------------------------------------------------------------------------------


def test_common_exact() -> None:
    assert format_common(make_record()) == (
        '127.0.0.1 - frank [10/Oct/2000:13:55:36 +0000] "GET /apache_pb.gif HTTP/1.0" 200 2326'
    )


def test_common_missing_fields_and_empty_body() -> None:
    record = make_record(client_addr=None, user=None, response_bytes=0, status=204)
    assert format_common(record) == (
        '- - - [10/Oct/2000:13:55:36 +0000] "GET /apache_pb.gif HTTP/1.0" 204 -'
    )


def test_common_empty_user_is_quoted_like_apache() -> None:
    assert format_common(make_record(user="")).startswith('127.0.0.1 - "" [')


def test_combined_exact() -> None:
    assert format_combined(make_record()) == (
        '127.0.0.1 - frank [10/Oct/2000:13:55:36 +0000] "GET /apache_pb.gif HTTP/1.0" 200 2326'
        ' "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'
    )


def test_combined_missing_headers_and_empty_values() -> None:
    assert format_combined(make_record(referer=None, user_agent=None)).endswith(' 2326 "-" "-"')
    assert format_combined(make_record(referer="", user_agent="")).endswith(' 2326 "" ""')


@pytest.mark.parametrize(
    ("version", "shown"),
    [("1.0", "HTTP/1.0"), ("1.1", "HTTP/1.1"), ("2", "HTTP/2"), ("3", "HTTP/3")],
)
def test_http_versions(version: str, shown: str) -> None:
    assert f'"GET /apache_pb.gif {shown}"' in format_common(make_record(http_version=version))


@pytest.mark.parametrize("month", range(1, 13))
def test_month_names_are_english_and_time_is_utc(month: int) -> None:
    names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    start = calendar.timegm((2024, month, 5, 23, 4, 9, 0, 0, 0)) + 0.999
    line = format_common(make_record(request_start=start))
    assert f"[05/{names[month - 1]}/2024:23:04:09 +0000]" in line


def test_json_exact() -> None:
    assert format_json(make_record()) == (
        '{"time":"2000-10-10T13:55:36.123Z","client_addr":"127.0.0.1","client_port":51234,'
        '"user":"frank","method":"GET","target":"/apache_pb.gif","http_version":"1.0",'
        '"status":200,"response_bytes":2326,"duration_ms":12.346,'
        '"referer":"http://www.example.com/start.html",'
        '"user_agent":"Mozilla/4.08 [en] (Win98; I ;Nav)","scheme":"http",'
        '"host":"www.example.com","request_id":"req-1"}'
    )


def test_json_keys_are_stable_and_missing_values_are_null() -> None:
    full = json.loads(format_json(make_record()))
    sparse_record = make_record(
        client_addr=None, client_port=None, user=None, referer=None, user_agent=None,
        host=None, request_id=None, response_bytes=0,
    )  # fmt: skip
    sparse = json.loads(format_json(sparse_record))
    assert list(sparse) == list(full)
    assert sparse["client_addr"] is None and sparse["user_agent"] is None
    assert sparse["response_bytes"] == 0


# -- escaping ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ('say "hi"', 'say \\"hi\\"'),
        ("back\\slash", "back\\\\slash"),
        ("a\r\nb", "a\\r\\nb"),
        ("\b\t\v", "\\b\\t\\v"),
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ("caf\xe9", "caf\\xe9"),  # a Latin-1-decoded byte comes back as that byte
        ("\u20ac", "\\xe2\\x82\\xac"),  # beyond Latin-1: its UTF-8 bytes
        ("\udcff", "\\xff"),  # surrogateescape: the byte it stands for
        ("plain ASCII [ok] (1;2) ~", "plain ASCII [ok] (1;2) ~"),
    ],
)
def test_user_agent_is_escaped_like_apache(raw: str, escaped: str) -> None:
    line = format_combined(make_record(user_agent=raw))
    assert line.endswith(f' "{escaped}"')


def test_escaping_is_lossless_for_latin1_header_bytes() -> None:
    raw = bytes(range(256)).decode("latin-1")
    match = COMBINED_RE.match(format_combined(make_record(referer=raw)))
    assert match is not None
    assert unescape(match.group(8)) == bytes(range(256))


FORGED = '" 200 1 "-" "-"\r\n6.6.6.6 - admin [10/Oct/2000:13:55:36 +0000] "GET /admin HTTP/1.1'


@pytest.mark.parametrize("field", ["user_agent", "referer", "target", "method", "user"])
def test_log_injection_cannot_forge_a_line(field: str) -> None:
    line = format_combined(make_record(**{field: FORGED}))
    assert "\r" not in line and "\n" not in line
    match = COMBINED_RE.match(line)
    assert match is not None, line
    assert match.group(1) == "127.0.0.1"
    assert match.group(6) == "200" and match.group(7) == "2326"
    group = {"user": 3, "referer": 8, "user_agent": 9}.get(field)
    if group is not None:
        assert unescape(match.group(group)) == FORGED.encode()


def test_unquoted_fields_escape_spaces_too() -> None:
    line = format_common(make_record(client_addr="1.2.3.4\n5.6.7.8", user="a b"))
    assert line.startswith("1.2.3.4\\n5.6.7.8 - a\\x20b [")


def test_json_injection_stays_on_one_line_and_round_trips() -> None:
    record = make_record(user_agent=FORGED + '\x00"}{"status":500', target="/a\nb", host="h\r\n")
    line = format_json(record)
    assert "\n" not in line and "\r" not in line and line.isascii()
    parsed = json.loads(line)
    assert parsed["user_agent"] == record.user_agent
    assert parsed["target"] == "/a\nb" and parsed["status"] == 200


# -- the log: files, stdout, disabled ------------------------------------------------------------


def test_file_gets_exact_lines_on_close(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), "common")
    for index in range(3):
        log.log(numbered(index))
    log.close()
    assert path.read_text() == "".join(
        f'127.0.0.1 - frank [10/Oct/2000:13:55:36 +0000] "GET /item/{i} HTTP/1.0" 200 2326\n'
        for i in range(3)
    )


def test_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text("old line\n")
    log = AccessLog(str(path))
    log.log(numbered(0))
    log.close()
    assert read_lines(path)[0] == "old line" and len(read_lines(path)) == 2


def test_json_log_file_parses(tmp_path: Path) -> None:
    path = tmp_path / "access.jsonl"
    log = AccessLog(str(path), "json")
    for index in range(50):
        log.log(numbered(index))
    log.close()
    targets = [json.loads(line)["target"] for line in read_lines(path)]
    assert targets == [f"/item/{i}" for i in range(50)]


def test_flush_makes_lines_visible_before_close(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path))
    log.log(numbered(0))
    log.log(numbered(1))
    assert log.flush(timeout=30)
    assert item_numbers(read_lines(path)) == [0, 1]
    log.close()


def test_close_is_idempotent_and_later_logs_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path))
    log.log(numbered(0))
    log.close()
    log.close()
    log.log(numbered(1))
    log.reopen()
    assert log.flush()
    log.close()
    assert item_numbers(read_lines(path)) == [0]


def test_disabled_log_is_a_no_op(tmp_path: Path) -> None:
    threads_before = threading.active_count()
    log = AccessLog(None)
    assert not log.enabled
    assert threading.active_count() == threads_before
    for index in range(10):
        log.log(numbered(index))
    assert log.flush()
    log.reopen()
    log.close()
    log.close()
    assert log.dropped == 0
    assert list(tmp_path.iterdir()) == []


def test_stdout_target(capfd: pytest.CaptureFixture[str]) -> None:
    log = AccessLog("-", "common")
    log.log(make_record())
    log.log(make_record(status=404, response_bytes=0))
    log.reopen()  # meaningless for stdout, and harmless
    log.close()
    out, err = capfd.readouterr()
    assert out == (
        '127.0.0.1 - frank [10/Oct/2000:13:55:36 +0000] "GET /apache_pb.gif HTTP/1.0" 200 2326\n'
        '127.0.0.1 - frank [10/Oct/2000:13:55:36 +0000] "GET /apache_pb.gif HTTP/1.0" 404 -\n'
    )
    assert err == ""


def test_unopenable_path_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        AccessLog(str(tmp_path / "missing-dir" / "access.log"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "apache"}, "format must be one of"),
        ({"max_bytes": -1}, "max_bytes must be >= 0"),
        ({"backups": -1}, "backups must be >= 0"),
        ({"backups": 3}, "backups needs max_bytes > 0"),
        ({"target": "-", "max_bytes": 1000}, "cannot apply to stdout"),
        ({"target": ""}, "must be a path"),
        ({"max_pending": 0}, "max_pending must be >= 1"),
    ],
)
def test_impossible_settings_are_errors(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    kwargs.setdefault("target", str(tmp_path / "access.log"))
    with pytest.raises(ValueError, match=message):
        AccessLog(**kwargs)


# -- rotation and reopen -----------------------------------------------------------------------


def backups_of(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".*"), key=lambda p: int(p.suffix[1:]))


def test_rotation_keeps_every_line_whole_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    max_bytes = 1000
    log = AccessLog(str(path), "combined", max_bytes=max_bytes, backups=100)
    for index in range(400):
        log.log(numbered(index))
        if index % 97 == 0:
            assert log.flush()  # vary batch boundaries
    log.close()
    files = [*reversed(backups_of(path)), path]  # oldest first
    assert 10 < len(files) <= 101
    assert [p.name for p in files[:-1]] == [f"access.log.{n}" for n in range(len(files) - 1, 0, -1)]
    for file in files:
        assert 0 < file.stat().st_size <= max_bytes
    numbers = [n for file in files for n in item_numbers(read_lines(file))]
    assert numbers == list(range(400))
    assert log.dropped == 0


def test_rotation_drops_only_the_oldest_backup(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), "combined", max_bytes=1500, backups=2)
    for index in range(300):
        log.log(numbered(index))
    log.close()
    assert [p.name for p in backups_of(path)] == ["access.log.1", "access.log.2"]
    files = [tmp_path / "access.log.2", tmp_path / "access.log.1", path]
    assert all(p.stat().st_size <= 1500 for p in files)
    numbers = [n for file in files for n in item_numbers(read_lines(file))]
    assert numbers == list(range(numbers[0], 300))  # consecutive, newest kept
    full = len(read_lines(files[0]))
    assert len(numbers) >= 2 * full  # two full backups plus the current file


def test_zero_backups_truncates(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), "combined", max_bytes=1200)
    for index in range(200):
        log.log(numbered(index))
    log.close()
    assert backups_of(path) == []
    assert 0 < path.stat().st_size <= 1200
    numbers = item_numbers(read_lines(path))
    assert numbers == list(range(numbers[0], 200))


def test_a_line_longer_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), "combined", max_bytes=300, backups=5)
    log.log(numbered(0))
    log.log(make_record(user_agent="x" * 1000, target="/item/1"))
    log.log(numbered(2))
    log.close()
    files = [*reversed(backups_of(path)), path]
    assert [item_numbers(read_lines(f)) for f in files] == [[0], [1], [2]]


def test_rotation_respects_size_written_by_others(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_bytes(b"x" * 950 + b"\n")
    log = AccessLog(str(path), "combined", max_bytes=1000, backups=1)
    log.log(numbered(0))
    log.close()
    assert (tmp_path / "access.log.1").read_bytes() == b"x" * 950 + b"\n"
    assert item_numbers(read_lines(path)) == [0]


def test_reopen_after_logrotate_moved_the_file(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    moved = tmp_path / "access.log.2024-01-01"
    log = AccessLog(str(path))
    for index in range(0, 10):
        log.log(numbered(index))
    assert log.flush()
    os.rename(path, moved)  # what logrotate does before sending SIGHUP
    for index in range(10, 15):
        log.log(numbered(index))  # still the old inode, as with any server before SIGHUP
    log.reopen()
    for index in range(15, 30):
        log.log(numbered(index))
    log.close()
    assert item_numbers(read_lines(moved)) == list(range(15))
    assert item_numbers(read_lines(path)) == list(range(15, 30))


def test_failed_reopen_keeps_writing_to_the_old_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = AccessLog(str(logs / "access.log"))
    log.log(numbered(0))
    assert log.flush()
    logs.rename(tmp_path / "gone")  # the path's directory no longer exists
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        log.reopen()
        log.log(numbered(1))
        log.close()
    assert item_numbers(read_lines(tmp_path / "gone" / "access.log")) == [0, 1]
    assert [r.getMessage() for r in caplog.records if "reopen failed" in r.getMessage()]
    assert log.dropped == 0


# -- errors and limits -------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_write_errors_are_reported_once_and_do_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        log = AccessLog("/dev/full")
        for index in range(5):
            log.log(numbered(index))
            assert log.flush()  # five separate failing writes
        log.close()
    errors = [r for r in caplog.records if r.name == LOGGER]
    assert len(errors) == 1
    assert errors[0].levelno == logging.ERROR and "cannot write" in errors[0].getMessage()
    assert log.dropped == 5


def test_recovery_after_write_errors_is_reported_with_the_count(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stream = GatedStream()
    stream.fail = True
    stream.gate.set()
    monkeypatch.setattr(sys, "stdout", stream)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        log = AccessLog("-")
        log.log(numbered(0))
        assert log.flush()
        log.log(numbered(1))
        assert log.flush()
        stream.fail = False
        log.log(numbered(2))
        log.close()
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(messages) == 2
    assert "cannot write" in messages[0] and "2 lines were lost" in messages[1]
    assert item_numbers(stream.text.splitlines()) == [2]


class GatedStream:
    """A stdout stand-in whose writes wait for a gate, to hold the writer thread still."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail = False
        self.chunks: list[str] = []

    def write(self, text: str) -> int:
        self.entered.set()
        self.gate.wait()
        if self.fail:
            raise OSError(28, "No space left on device")
        self.chunks.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def test_a_stalled_writer_drops_lines_past_max_pending_instead_of_growing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stream = GatedStream()
    monkeypatch.setattr(sys, "stdout", stream)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        log = AccessLog("-", max_pending=50)
        log.log(numbered(0))
        assert stream.entered.wait(30)  # the writer holds line 0 and is stuck in write()
        for index in range(1, 56):
            log.log(numbered(index))  # 50 wait in the queue, 5 are dropped; none block
        assert log.dropped == 5
        stream.gate.set()
        log.close()
    assert item_numbers(stream.text.splitlines()) == list(range(51))
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(messages) == 2
    assert "dropping lines" in messages[0] and "5 lines dropped" in messages[1]


# -- concurrency and shutdown ------------------------------------------------------------------


async def test_many_asyncio_tasks_lose_no_line(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path))

    async def client(task: int) -> None:
        for index in range(200):
            log.log(numbered(task * 1000 + index))
            await asyncio.sleep(0)

    await asyncio.gather(*(client(task) for task in range(25)))
    await log.aclose()
    numbers = item_numbers(read_lines(path))
    assert sorted(numbers) == sorted(t * 1000 + i for t in range(25) for i in range(200))


@pytest.mark.parametrize(
    ("fmt", "max_bytes", "backups"), [("combined", 0, 0), ("common", 4096, 500)]
)
def test_many_threads_lose_no_line(
    tmp_path: Path, fmt: Literal["common", "combined"], max_bytes: int, backups: int
) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), fmt, max_bytes=max_bytes, backups=backups)
    start = threading.Barrier(8)

    def worker(thread: int) -> None:
        start.wait()
        for index in range(1000):
            log.log(numbered(thread * 10_000 + index))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for each in threads:
        each.start()
    for each in threads:
        each.join()
    log.close()
    files = [*reversed(backups_of(path)), path]
    lines = [line for file in files for line in read_lines(file)]
    numbers = [int(line.split('"')[1].split()[1].rsplit("/", 1)[1]) for line in lines]
    assert len(numbers) == 8000
    for thread in range(8):  # each thread's lines complete and in its own order
        own = [n for n in numbers if n // 10_000 == thread]
        assert own == [thread * 10_000 + i for i in range(1000)]
    if max_bytes:
        assert len(files) > 1 and all(f.stat().st_size <= max_bytes for f in files)


def test_lines_are_written_at_interpreter_exit_without_close(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    script = textwrap.dedent(
        f"""
        from rws.http.server.access_log import AccessLog, AccessRecord
        log = AccessLog({str(path)!r}, "common")
        for i in range(1000):
            log.log(AccessRecord("::1", 1, "GET", f"/item/{{i}}", "1.1", 200, 5, 0.0, 0.0))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    lines = read_lines(path)
    assert len(lines) == 1000
    assert lines[-1] == '::1 - - [01/Jan/1970:00:00:00 +0000] "GET /item/999 HTTP/1.1" 200 5'


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        'q"uote',
        "back\\slash",
        "ctl\x00\x1f\x7f",
        "caf\xe9 \u20ac \U0001f600",
        "\udcff",
        "",
    ],
)
def test_json_matches_the_stdlib_encoder(text: str) -> None:
    record = make_record(
        user_agent=text, referer=text, target=text, user=text, host=text, request_id=text,
        method=text, client_addr=text, scheme=text, duration=1e-9, client_port=None,
    )  # fmt: skip
    reference = {
        "time": "2000-10-10T13:55:36.123Z", "client_addr": text, "client_port": None,
        "user": text, "method": text, "target": text, "http_version": "1.0", "status": 200,
        "response_bytes": 2326, "duration_ms": 0.0, "referer": text, "user_agent": text,
        "scheme": text, "host": text, "request_id": text,
    }  # fmt: skip
    assert format_json(record) == json.dumps(reference, separators=(",", ":"))
