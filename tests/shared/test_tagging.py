"""Tag schemes and windows: the pieces entity training and serving share."""

import pytest

from shared.runtime.tagging import iob2_tags, parse_tag, plan_windows, spans_from_tags, window_owners, word_shape


def test_io_tags_make_one_span_per_run_of_a_type():
    tags = ["I-ORG", "I-ORG", "O", "I-PER", "I-LOC", "I-LOC"]
    assert spans_from_tags(tags) == [("ORG", 0, 2), ("PER", 3, 4), ("LOC", 4, 6)]


def test_iob2_b_tag_splits_adjacent_entities_of_one_type():
    assert spans_from_tags(["B-PER", "I-PER", "B-PER", "O"]) == [("PER", 0, 2), ("PER", 2, 3)]


def test_i_tag_after_another_type_opens_a_span_like_seqeval():
    assert spans_from_tags(["B-PER", "I-ORG", "I-ORG"]) == [("PER", 0, 1), ("ORG", 1, 3)]


def test_any_tag_set_and_unicode_types_are_accepted():
    tags = ["B-Währung", "I-Währung", "O", "B-Produkt_Name"]
    assert spans_from_tags(tags) == [("Währung", 0, 2), ("Produkt_Name", 3, 4)]
    assert iob2_tags(spans_from_tags(tags), 4) == tags


@pytest.mark.parametrize("tag", ["S-PER", "E-ORG", "PER", "B-", "o", "U-LOC"])
def test_unknown_tag_schemes_are_refused(tag):
    with pytest.raises(ValueError, match="unknown tag"):
        parse_tag(tag)


def test_windows_cover_every_token_with_the_given_overlap():
    windows = plan_windows(250, size=100, overlap=25)
    assert windows[0] == (0, 100) and windows[-1][1] == 250
    for (s1, e1), (s2, _) in zip(windows, windows[1:]):
        assert e1 - s2 == 25  # consecutive windows share exactly the overlap
    assert plan_windows(40, size=100, overlap=25) == [(0, 40)]
    with pytest.raises(ValueError):
        plan_windows(10, size=10, overlap=10)


def test_each_token_is_owned_by_the_window_where_it_has_most_context():
    windows = plan_windows(250, size=100, overlap=26)
    owners = window_owners(windows, 250)
    assert owners[0] == 0 and owners[249] == len(windows) - 1
    # In the overlap of windows 0 (0-100) and 1 (74-174), the first half belongs to window 0.
    assert owners[80] == 0 and owners[95] == 1
    assert all(windows[w][0] <= i < windows[w][1] for i, w in enumerate(owners))


def test_word_shapes():
    shapes = [word_shape(w) for w in ("delaware", "Delaware", "LLC", "I", "McDonald", "2024", "Ünter", "eBay")]
    assert shapes == [1, 2, 3, 2, 4, 5, 2, 4]
