"""Reading CoNLL files: any tag set, IO or IOB2, and clear errors naming the line."""

import gzip

import pytest

from pipelines.common.token_files import read_conll, tag_scheme
from shared.errors import DataError


def write(tmp_path, text: str, name: str = "data.conll"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_four_columns_docstart_and_blank_lines(tmp_path):
    path = write(tmp_path, "-DOCSTART- -X- O O\n\nSILICON NNP - I-ORG\nVALLEY NNP - I-ORG\nsigned VBD - O\n\n"
                           "John NNP - I-PER\n\n\n")
    sentences = read_conll(path)
    assert [s.tokens for s in sentences] == [("SILICON", "VALLEY", "signed"), ("John",)]
    assert [s.spans for s in sentences] == [(("ORG", 0, 2),), (("PER", 0, 1),)]
    assert sentences[1].line == 7


def test_two_columns_tabs_iob2_and_a_unicode_tag_set(tmp_path):
    path = write(tmp_path, "Zahlung\tO\n500\tB-Betrag\nEuro\tI-Betrag\nan\tO\nMüller\tB-Person\nGmbH\tB-Firma\n")
    (sentence,) = read_conll(path)
    assert sentence.spans == (("Betrag", 1, 3), ("Person", 4, 5), ("Firma", 5, 6))
    assert tag_scheme({"O", "B-Betrag", "I-Betrag"}) == "IOB2"
    assert tag_scheme({"O", "I-PER"}) == "IO"


def test_gzip_files_are_read(tmp_path):
    path = tmp_path / "data.conll.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("Acme B-ORG\n")
    assert read_conll(path)[0].spans == (("ORG", 0, 1),)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Acme B-ORG\nlonely\n", r"data.conll:2: expected a token and a tag"),
        ("Acme S-ORG\n", r"data.conll:1: unknown tag 'S-ORG'"),
        ("Acme ORG\n", r"data.conll:1: unknown tag 'ORG'"),
        ("\n\n-DOCSTART- O\n", r"no sentences found"),
    ],
)
def test_malformed_files_name_the_line_and_the_problem(tmp_path, content, message):
    with pytest.raises(DataError, match=message):
        read_conll(write(tmp_path, content))


def test_not_utf8_and_missing_file(tmp_path):
    path = tmp_path / "latin1.conll"
    path.write_bytes("Acme O\nM\xfcller B-PER\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_conll(path)
    with pytest.raises(DataError, match="no such file"):
        read_conll(tmp_path / "absent.conll")


def test_context_comes_from_neighbours_in_the_same_document_only(tmp_path):
    path = write(tmp_path, "-DOCSTART- O\n\nA O\nB O\n\nC I-PER\n\nD O\nE O\n\n-DOCSTART- O\n\nF O\n")
    sentences = read_conll(path, context_words=4)
    by_token = {s.tokens[0]: s for s in sentences}
    assert (by_token["C"].left, by_token["C"].right) == (("A", "B"), ("D", "E"))
    assert by_token["A"].left == () and by_token["D"].right == ()  # the next document is not context
    assert by_token["F"].left == () and by_token["F"].right == ()
    assert read_conll(path)[2].left == ()  # no context unless asked
