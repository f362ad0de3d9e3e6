"""Reading customer files: clear errors naming the line and the problem."""

import gzip
import json

import pytest

from pipelines.common.args import TrainingArgs
from pipelines.common.data import ColumnMapping, Example, read_examples, split_dev
from shared.errors import DataError


def test_csv_with_custom_columns_and_fields(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('merchant,cat,amount\n"ACME, Ltd",Office Supplies,12.5\nTESCO,Food & Drink,3\n', encoding="utf-8")
    examples = read_examples(path, ColumnMapping(text="merchant", label="cat", fields=("amount",)))
    assert examples == [Example("ACME, Ltd", "Office Supplies", {"amount": "12.5"}),
                        Example("TESCO", "Food & Drink", {"amount": "3"})]


def test_jsonl_and_gzip(tmp_path):
    path = tmp_path / "t.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": "héllo ✓", "label": "ünïcode label"}) + "\n\n")
    assert read_examples(path, ColumnMapping()) == [Example("héllo ✓", "ünïcode label", {})]


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("text,label\nfine,a\n,b\n", ".csv", r"t\.csv:3: empty text"),
        ("text,label\nfine,a\nalso fine,\n", ".csv", r"t\.csv:3: empty label"),
        ("body,label\nfine,a\n", ".csv", r"t\.csv:2: missing column\(s\) text \(found: body, label\)"),
        ('{"text": "a", "label": "x"}\n{broken\n', ".jsonl", r"t\.jsonl:2: not valid JSON"),
        ('["a", "b"]\n', ".jsonl", r"t\.jsonl:1: expected a JSON object"),
        ("", ".csv", r"t\.csv:1: empty file"),
        ("text,label\n", ".csv", r"no rows found"),
        ("a", ".parquet", r"unsupported file type"),
    ],
)
def test_malformed_files_name_line_and_problem(tmp_path, content, suffix, message):
    path = tmp_path / f"t{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_examples(path, ColumnMapping())


def test_byte_order_mark_and_json_nulls(tmp_path):
    bom = tmp_path / "excel.csv"
    bom.write_bytes("text,label\nhello,a\n".encode("utf-8-sig"))
    assert read_examples(bom, ColumnMapping()) == [Example("hello", "a", {})]
    nulls = tmp_path / "n.jsonl"
    nulls.write_text('{"text": "ok", "label": null}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"n\.jsonl:1: empty label"):
        read_examples(nulls, ColumnMapping())


def test_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncaf\u00e9,a\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv:\d+: not UTF-8"):
        read_examples(path, ColumnMapping())


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_examples(tmp_path / "nope.csv", ColumnMapping())


def test_dev_split_is_stratified_and_keeps_every_label_in_train():
    examples = [Example(f"t{i}", "big") for i in range(90)] + [Example(f"s{i}", "small") for i in range(10)]
    examples.append(Example("only", "singleton"))
    train, dev = split_dev(examples, 0.1, seed=1)
    assert len(train) + len(dev) == len(examples)
    assert {e.label for e in train} == {"big", "small", "singleton"}
    assert sorted(e.label for e in dev) == ["big"] * 9 + ["small"]
    assert split_dev(examples, 0.1, seed=1) == (train, dev)


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(batch_size=0), dict(learning_rate=2.0), dict(max_length=4)])
def test_training_args_refuse_bad_values(bad):
    (name, value), = bad.items()
    with pytest.raises(ValueError, match=f"{name} must be"):
        TrainingArgs(**bad)
