"""`repro export lm-eval` writes what lm-evaluation-harness's own readers read.

lm-eval is not installed here (and not in the locks), so its readers are restated below, line for
line where it matters: lm_eval/utils.py (results/sample file discovery, task name and date from the
file name), scripts/zeno_visualize.py (generate_dataset / generate_system_df), lm_eval/utils.make_table
(metric,filter keys with their _stderr), scripts/compare_samples.py (load_scores) and
EvaluationTracker.save_results_aggregated (task_hashes).
"""

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest

from app.errors import UserError
from app.study.export_lm_eval import export
from tests.helpers import repro

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "docs" / "cpu_study" / "runs" / "cpu_base-d44b4f90"  # strict 0/64, diagnostic 3/64


# --- lm-eval's readers, restated -------------------------------------------------------------------
def hash_string(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def get_results_filenames(filenames):
    return [f for f in filenames if "/results_" in f and ".json" in f]


def get_sample_results_filenames(filenames):
    return [f for f in filenames if "/samples_" in f and ".json" in f]


def get_file_task_name(filename: str) -> str:
    return filename[filename.find("_") + 1 : filename.rfind("_")]


def get_file_datetime(filename: str) -> str:
    return filename[filename.rfind("_") + 1 :].replace(".jsonl", "")


def get_latest_filename(filenames):
    return max(filenames, key=get_file_datetime)


def make_table_rows(result_dict: dict) -> list[list]:
    """lm_eval.utils.make_table's rows: (task, version, filter, n-shot, metric, value, stderr)."""
    rows = []
    for k, dic in result_dict["results"].items():
        dic = dict(dic)
        version, n = result_dict["versions"].get(k, "N/A"), result_dict["n-shot"].get(k, " ")
        k = dic.pop("alias", k)
        for mf, v in sorted(dic.items()):
            m, _, f = mf.partition(",")
            if m.endswith("_stderr"):
                continue
            se = dic.get(m + "_stderr" + "," + f, "")
            rows.append([k, version, f, n, m, f"{v:.4f}", se if se in ("", "N/A") else f"{se:.4f}"])
    return rows


def zeno_frames(data: list[dict], config: dict) -> tuple[dict, dict]:
    """zeno_visualize.generate_dataset / generate_system_df for a generate_until task, as plain columns."""
    ids = (
        [x["doc_id"] for x in data] if not config.get("filter_list") else [f"{x['doc_id']}.{x['filter']}" for x in data]
    )
    assert config["output_type"] == "generate_until"
    dataset = {
        "id": ids,
        "data": [x["arguments"]["gen_args_0"]["arg_0"] for x in data],
        "labels": [x["target"] for x in data],
    }
    system = {"id": ids, "filter": [x["filter"] for x in data], "output": [str(x["filtered_resps"][0]) for x in data]}
    system |= {m["metric"]: [x[m["metric"]] for x in data] for m in config["metric_list"]}
    return dataset, system


def load_scores(path: Path, metric: str, filter_name: str) -> dict[int, float]:
    """scripts/compare_samples.py load_scores."""
    scores = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("filter", "none") == filter_name:
            scores[int(row["doc_id"])] = float(row[metric])
    return scores


# --- the tests ---------------------------------------------------------------------------------------
def exported(out: Path) -> tuple[dict, str, list[dict], Path]:
    """The latest results file, its task and that task's latest samples, found as lm-eval's readers find them."""
    files = [p.as_posix() for p in out.rglob("*") if p.is_file()]
    results_path = get_latest_filename(get_results_filenames(files))
    results = json.loads(Path(results_path).read_text(encoding="utf-8"))
    (task,) = results["configs"]  # zeno's tasks_for_model
    samples = [f for f in get_sample_results_filenames(files) if get_file_task_name(Path(f).name) == task]
    samples_path = Path(get_latest_filename(samples))
    rows = [json.loads(line) for line in samples_path.read_text(encoding="utf-8").splitlines()]
    return results, task, rows, samples_path


def test_export_reads_back_as_lm_eval_results(tmp_path):
    predictions_before = hashlib.sha256((RUN / "predictions.jsonl").read_bytes()).hexdigest()
    written = export(RUN, tmp_path)
    results, task, rows, samples_path = exported(tmp_path)
    metrics = json.loads((RUN / "eval_metrics.json").read_text())
    records = [json.loads(line) for line in (RUN / "predictions.jsonl").read_text().splitlines()]
    n = metrics["n"]

    table = {row[2]: row for row in make_table_rows(results)}
    assert set(table) == {"strict-match", "flexible-extract"} and table["strict-match"][4] == "exact_match"
    res = results["results"][task]
    assert res["exact_match,strict-match"] == pytest.approx(metrics["strict_accuracy"])
    assert res["exact_match,flexible-extract"] == pytest.approx(metrics["diagnostic_accuracy"])
    for name in ("strict-match", "flexible-extract"):
        scores = load_scores(samples_path, "exact_match", name)
        values = [scores[i] for i in range(n)]
        mean = sum(values) / n
        sd = math.sqrt(sum((x - mean) ** 2 for x in values) / (n - 1))
        assert res[f"exact_match,{name}"] == pytest.approx(mean)
        assert res[f"exact_match_stderr,{name}"] == pytest.approx(sd / math.sqrt(n))
    assert results["n-samples"][task]["effective"] == n and results["n-shot"][task] == 0

    dataset, system = zeno_frames(rows, results["configs"][task])
    assert len(set(dataset["id"])) == len(rows) == 2 * n  # one record per question and filter
    strict = [i for i, f in enumerate(system["filter"]) if f == "strict-match"]
    for i, rec in zip(strict, records):
        prompt = dataset["data"][i]
        assert hash_string(prompt) == rows[i]["prompt_hash"] == rec["prompt_sha256"]
        assert prompt.endswith("\nAssistant: <think>") and rows[i]["doc"]["question"].strip() in prompt
        assert rows[i]["resps"] == [[rec["output"]]] and system["exact_match"][i] == float(rec["strict_correct"])
        assert rows[i]["doc_hash"] == hash_string(json.dumps(rows[i]["doc"], indent=2, ensure_ascii=False))
        assert rows[i]["target_hash"] == hash_string(str(rows[i]["target"])) and rows[i]["target"] == rec["gold"]
    chained = "".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in rows)
    assert results["task_hashes"][task] == hash_string(chained)

    again = tmp_path / "again"
    assert [p.read_bytes() for p in export(RUN, again)] == [p.read_bytes() for p in written]  # same bytes
    assert hashlib.sha256((RUN / "predictions.jsonl").read_bytes()).hexdigest() == predictions_before


def test_a_prompt_that_no_longer_matches_is_an_error_naming_its_index(tmp_path, real_gsm8k, monkeypatch):
    """The run reads `local` GSM8K: a copy with question 3 reworded renders a prompt of another hash."""
    data = tmp_path / "gsm8k"
    data.mkdir()
    shutil.copy(real_gsm8k / "train.jsonl", data / "train.jsonl")
    rows = (real_gsm8k / "test.jsonl").read_text().splitlines()
    row = json.loads(rows[3])
    rows[3] = json.dumps({**row, "question": row["question"] + " Answer quickly."})
    (data / "test.jsonl").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("GSM8K_DIR", str(data))
    with pytest.raises(UserError, match=r"predictions.jsonl: index 3: the prompt rendered from r1_zero_v1"):
        export(RUN, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written
    out = repro("export", "lm-eval", str(RUN), "--out", str(tmp_path / "out"), env={"GSM8K_DIR": str(data)})
    (line,) = out.stderr.splitlines()
    assert out.returncode == 2 and line.startswith("error: ") and "index 3:" in line, out.stderr
