"""The stable command line of DESIGN.md, run as a real subprocess."""

from __future__ import annotations

import json
import shutil

from tests.conftest import KNOWLEDGE, run_cli


def test_ask_jsonl_keeps_order_and_reports_bad_lines(cli_env):
    lines = "\n".join(
        [
            json.dumps({"id": "q1", "question": "how long does botox last?"}),
            json.dumps({"id": "q2", "question": ""}),
            "not json",
            json.dumps({"id": "q4", "question": "my lips went white and hurt a lot right after filler"}),
            json.dumps({"id": "q5"}),
            json.dumps({"id": "q6", "question": "x" * 2500}),
            json.dumps({"question": "what is a chemical peel", "session": "s1"}),
        ]
    )
    result = run_cli(["ask", "--jsonl"], cli_env, stdin=lines)
    assert result.returncode == 0, result.stderr.decode()[-500:]
    out = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [o.get("id") for o in out] == ["q1", "q2", None, "q4", "q5", "q6", None]
    assert out[0]["kind"] == "answer" and out[0]["sources"][0]["id"] == "botulinum-toxin"
    assert set(out[0]) >= {"id", "kind", "text", "sources", "latency_ms"}
    assert "error" in out[1] and "error" in out[2] and "error" in out[4]
    assert "2,500 characters" in out[5]["error"]
    assert out[3]["kind"] == "emergency"
    assert out[6]["kind"] == "answer" and out[6]["session"] == "s1"


def test_ask_jsonl_survives_invalid_utf8_lines(cli_env):
    data = b'{"id": "a", "question": "what is prp"}\n\xff\xfe\n{"id": "c", "question": "what is ipl"}\n'
    result = run_cli(["ask", "--jsonl"], cli_env, stdin=data)
    out = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [o.get("id") for o in out] == ["a", None, "c"]
    assert "UTF-8" in out[1]["error"]


def test_redact_jsonl(cli_env):
    lines = "\n".join(
        [
            json.dumps({"id": "r1", "text": "I am Zora Ellingham, call 415-555-0134 about my Xeomin"}),
            json.dumps({"id": "r2", "text": ""}),
            "not json",
        ]
    )
    result = run_cli(["redact", "--jsonl"], cli_env, stdin=lines)
    out = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(out) == 3
    assert "Zora" not in out[0]["redacted"] and "555-0134" not in out[0]["redacted"]
    assert "Xeomin" in out[0]["redacted"]
    assert {"PERSON", "PHONE"} <= {e["type"] for e in out[0]["entities"]}
    assert all(set(e) == {"type", "start", "end", "score"} for e in out[0]["entities"])
    assert "error" in out[1] and "error" in out[2]


def test_redact_plain_text(cli_env):
    result = run_cli(["redact"], cli_env, stdin="email me at zora.e@example.com")
    assert result.stdout.decode().strip() == "email me at <EMAIL>"


def test_broken_explainer_reports_path_and_line_and_keeps_the_index(cli_env, tmp_path):
    knowledge = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, knowledge)
    broken = knowledge / "explainers" / "prp.md"
    broken.write_text(broken.read_text().replace("status: sample", "status: aproved"))
    env = dict(cli_env, CLINICBOT_KNOWLEDGE_DIR=str(knowledge))
    result = run_cli(["ingest"], env)
    assert result.returncode == 1
    err = result.stderr.decode()
    assert f"{broken}:" in err and "'status'" in err
    assert "Traceback" not in err
    ask = run_cli(["ask", "what is prp"], cli_env)
    assert ask.returncode == 0 and ask.stdout.decode().startswith("[answer]")


def test_unreachable_chroma_server_is_one_line_naming_the_setting(cli_env):
    env = dict(cli_env, CLINICBOT_CHROMA_URL="http://127.0.0.1:9")
    result = run_cli(["ask", "what is botox"], env)
    assert result.returncode == 1
    err = result.stderr.decode().strip()
    assert "CLINICBOT_CHROMA_URL" in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_ingest_with_no_changes_reports_up_to_date(cli_env):
    result = run_cli(["ingest"], cli_env)
    assert result.returncode == 0
    assert "up to date" in result.stdout.decode()


def test_python_dash_m_bot_works(cli_env):
    result = run_cli(["--help"], cli_env)
    assert result.returncode == 0 and "ingest" in result.stdout.decode()
