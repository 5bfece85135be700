"""bulkscan in Chinese, end to end: `--lang zh` (or LANG=zh_CN.UTF-8) gives Chinese messages,
help and workbook headers, while sheet names, JSON and outcome codes stay English."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest

from bulkscan.report.audit import read_duplicates
from tests.e2e.test_run_e2e import bulkscan

pytestmark = pytest.mark.asyncio

INPUTS = Path(__file__).resolve().parents[2] / "inputs"
SAMPLE = INPUTS / "sample.xlsx"
SIM = ("--simulate", "--reports-dir", "demo", "--rate", "200/s")


def _book(folder: Path, name: str) -> openpyxl.Workbook:
    found = sorted(folder.rglob(name))
    assert found, f"no {name} under {folder}"
    return openpyxl.load_workbook(found[-1])


def _labels(ws: object) -> list[object]:
    return [row[0].value for row in ws.iter_rows(max_col=1)]  # type: ignore[attr-defined]


async def test_a_run_in_chinese_writes_chinese_headers_under_english_sheet_names(
    tmp_path: Path,
) -> None:
    done = await bulkscan(tmp_path, "--lang", "zh", "run", SAMPLE, *SIM, "--yes", "--json")
    assert done.code == 0, done.err
    payload = json.loads(done.out)  # JSON stays English for scripts
    assert "outcomes" in payload and "created" in payload["outcomes"]
    book = _book(tmp_path / "demo", "results.xlsx")
    assert {"Summary", "Tasks", "Rows", "Issues", "Attempts"} <= set(book.sheetnames)
    tasks = [c.value for c in book["Tasks"][1]]
    assert tasks[:3] == ["任务名称", "项目ID", "区域"]
    assert "结果" in tasks and "DSC 任务ID" in tasks
    assert {c.value for c in book["Tasks"]["H"][1:]} == {"created"}  # outcome codes: English
    rows = [c.value for c in book["Rows"][1]]
    assert rows[:3] == ["来源文件", "来源工作表", "来源行"]
    labels = _labels(book["Summary"])
    assert "状态" in labels and "按结果统计任务" in labels and "设置（不保存任何密钥）" in labels


async def test_an_audit_in_chinese_reads_back_by_its_english_names(tmp_path: Path) -> None:
    first = await bulkscan(tmp_path, "run", SAMPLE, *SIM, "--yes")
    assert first.code == 0, first.err
    audit = await bulkscan(tmp_path, "audit", SAMPLE, *SIM[:3], "--lang", "zh")
    assert audit.code == 0, audit.err
    assert "个实例：已覆盖 " in audit.out and "审计工作簿：" in audit.out
    found = sorted((tmp_path / "demo").rglob("*audit*.xlsx"))
    assert found, audit.out
    book = openpyxl.load_workbook(found[-1])
    assert "Coverage" in book.sheetnames and "Duplicates" in book.sheetnames
    assert [c.value for c in book["Coverage"][1]][:2] == ["输入行", "ins_id"]
    assert "覆盖审计" in _labels(book["Summary"])
    assert read_duplicates(found[-1]) == []  # the Chinese headers are known as its own


async def test_english_stays_the_default(tmp_path: Path) -> None:
    done = await bulkscan(tmp_path, "run", SAMPLE, *SIM, "--yes")
    assert done.code == 0, done.err
    book = _book(tmp_path / "demo", "results.xlsx")
    assert [c.value for c in book["Tasks"][1]][:3] == ["task name", "project", "region"]
    assert "状态" not in _labels(book["Summary"])


async def test_validate_errors_in_chinese_with_lang_or_the_locale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = INPUTS / "sample-with-errors.xlsx"
    flagged = await bulkscan(tmp_path, "validate", bad, "--lang", "zh")
    assert flagged.code == 2
    assert "工作表“instances”，第 2 行，列“DB Type”：'mysq' 不是已知的数据库类型" in flagged.err
    assert "您是不是想输入“MySQL”？" in flagged.err
    assert flagged.err.startswith("错误：") and "\nerror:" not in flagged.err
    assert "：未通过：7 个实例，跳过 0 行，10 个错误，2 个警告" in flagged.out
    english = await bulkscan(tmp_path, "validate", bad)
    assert "sheet 'instances', row 2, column 'DB Type': 'mysq' is not a known" in english.err
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    by_locale = await bulkscan(tmp_path, "validate", bad)
    assert by_locale.err == flagged.err
    missing = await bulkscan(tmp_path, "validate", tmp_path / "nope.xlsx")
    assert missing.code == 2 and "bulkscan：错误：" in missing.err and "文件不存在" in missing.err
    assert "Traceback" not in missing.err


async def test_help_in_chinese(tmp_path: Path) -> None:
    shown = await bulkscan(tmp_path, "--lang", "zh", "--help")
    assert shown.code == 0
    assert shown.out.startswith("用法：bulkscan")
    assert "一次性将大量数据库纳入华为云数据安全中心" in shown.out


async def test_a_run_prints_its_plan_progress_and_summary_in_chinese(tmp_path: Path) -> None:
    canary = (*SIM, "--yes", "--limit", "2")
    done = await bulkscan(tmp_path, "--lang", "zh", "run", SAMPLE, *canary)
    assert done.code == 0, done.err
    assert "16 个扫描任务，涵盖 148 个实例；将 2 个发送到 内置模拟器" in done.err
    assert "个请求，14 个扫描任务因 --limit 被保留" in done.out
    assert "结果：demo" in done.out
    # the command to copy stays as it is, in the same language
    assert "；继续运行：bulkscan --lang zh run " in done.out
    assert "task(s)" not in done.out + done.err
    run_dir = next(p for p in (tmp_path / "demo").iterdir() if p.is_dir())
    status = await bulkscan(tmp_path, "--lang", "zh", "status", run_dir, "--simulate")
    assert "本次运行有 14 个扫描任务尚未发送或结果未知" in status.out, status.err
    assert "结果：" in status.out
    rebuilt = await bulkscan(tmp_path, "--lang", "zh", "report", run_dir)
    assert rebuilt.code == 0, rebuilt.err  # as the canary exited; the rest to resume
    assert rebuilt.out.startswith("结果：") and "；继续运行：bulkscan --lang zh run " in rebuilt.out
    assert "14 个扫描任务因 --limit 被保留；继续运行：" in rebuilt.out, rebuilt.out
    english = await bulkscan(tmp_path, "run", SAMPLE, *canary)
    assert english.code == 0, english.err
    assert "16 task(s) for 148 instance(s); sending 2 to the embedded simulator" in english.err
    assert "request(s), 14 task(s) held back by --limit" in english.out
    assert "14 task(s) held back by --limit; resume with: bulkscan run " in english.out
    assert "results: demo" in english.out


async def test_a_chinese_run_refused_without_a_terminal_keeps_its_error_under_quiet(
    tmp_path: Path,
) -> None:
    refused = await bulkscan(tmp_path, "--lang", "zh", "-q", "run", SAMPLE, *SIM)
    assert refused.code == 2
    assert "未发送任何内容：标准输入不是终端" in refused.err  # an error: --quiet keeps it
    assert "涵盖" not in refused.err  # the plan line is detail: --quiet leaves it out


async def test_plan_prints_its_tables_and_summary_in_chinese(tmp_path: Path) -> None:
    chinese = await bulkscan(tmp_path, "--lang", "zh", "plan", SAMPLE)
    assert chinese.code == 0, chinese.err
    assert chinese.out.startswith("扫描任务 ")
    assert "16 个扫描任务，涵盖 148 个实例；跳过 2 行" in chinese.out
    assert "未发送任何内容。" in chinese.out
    english = await bulkscan(tmp_path, "plan", SAMPLE)
    assert english.code == 0, english.err
    assert english.out.startswith("task ")
    assert "16 task(s) for 148 instance(s); 2 skipped, 0 duplicate(s)" in english.out
    assert english.out.rstrip().endswith("Nothing was sent.")


async def test_doctor_speaks_chinese_and_keeps_its_json_keys(tmp_path: Path) -> None:
    said = await bulkscan(tmp_path, "--lang", "zh", "doctor", SAMPLE, *SIM[:3])
    assert said.code == 0, said.err
    assert ": 凭据: 已接受" in said.out and ": 数据安全中心: 已开通" in said.out
    assert "速率: 最多每秒" in said.out and "credentials" not in said.out
    document = await bulkscan(tmp_path, "--lang", "zh", "doctor", SAMPLE, *SIM[:3], "--json")
    names = {check["name"] for check in json.loads(document.out)["checks"]}
    assert names == {"credentials", "DSC", "listing", "list shape", "paging", "rate"}


async def test_the_uncovered_workbook_and_config_speak_chinese(tmp_path: Path) -> None:
    audit = await bulkscan(tmp_path, "--lang", "zh", "audit", SAMPLE, *SIM[:3])
    assert audit.code == 1, audit.err  # nothing was created: every instance is uncovered
    found = sorted((tmp_path / "demo").rglob("*uncovered*.xlsx"))
    assert found, audit.out
    book = openpyxl.load_workbook(found[-1])
    readme = [c for c in _labels(book["README"]) if c]
    assert readme[0] == "没有已启用扫描任务的实例"
    assert any(str(line).startswith("用以下命令创建缺失的任务：bulkscan") for line in readme)
    assert "instances" in book.sheetnames  # the sheet bulkscan run reads keeps its name
    document = await bulkscan(tmp_path, "--lang", "zh", "audit", SAMPLE, *SIM[:3], "--json")
    step = json.loads(document.out)["next"]  # keys stay English, the reason does not
    assert step["why"] == "为未覆盖的实例创建扫描任务" and step["argv"][:2] == ["bulkscan", "run"]
    config = await bulkscan(tmp_path, "config", "--lang", "zh")
    assert config.code == 0 and config.out.startswith("配置文件："), config.err


async def test_the_inputs_own_headers_stay_as_written_even_when_they_spell_bulkscans(
    tmp_path: Path,
) -> None:
    """An input column named 'region' or 'status' is the input's: under --lang zh the Rows
    sheet, retry.xlsx (read again as input) and the errors workbook keep it as written."""
    headers = ["ins_id", "db_type", "project", "region", "status", "message", "hint"]
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "instances"
    sheet.append(headers)
    sheet.append(["i1", "MySQL", "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "cn-north-4", "a", "b", "c"])
    inventory = tmp_path / "own.xlsx"
    book.save(inventory)
    assets = tmp_path / "assets.json"  # the asset centre knows no i1: DSC refuses its create
    assets.write_text(json.dumps({"instances": []}), encoding="utf-8")
    done = await bulkscan(
        tmp_path, "--lang", "zh", "run", inventory, *SIM, "--yes",
        "--simulate-assets", assets, "--no-remote-check",
    )  # fmt: skip
    assert done.code == 1, done.err  # a retry workbook is written
    rows = [c.value for c in _book(tmp_path / "demo", "results.xlsx")["Rows"][1]]
    assert rows[:4] == ["来源文件", "来源工作表", "来源行", "ins_id"]
    assert rows[-5:] == headers[2:]  # carried as written, after bulkscan's own 结果, 消息...
    assert "结果" in rows and "消息" in rows
    retry = _book(tmp_path / "demo", "retry.xlsx")["instances"]
    assert [c.value for c in retry[1]][: len(headers)] == headers
    checked = await bulkscan(
        tmp_path, "--lang", "zh", "validate", inventory, "--report", tmp_path / "e.xlsx"
    )
    assert checked.code == 0, checked.err
    errors = openpyxl.load_workbook(tmp_path / "e.xlsx")
    shown = [c.value for c in errors[errors.sheetnames[0]][1]]
    assert shown[-len(headers) :] == headers and "提示" in shown[: -len(headers)]
