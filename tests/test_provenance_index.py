"""provenance.suffix_index: the on-disk suffix index gives the in-memory index's exact answers,
is written atomically, and refuses damaged, foreign or mismatched files by name."""

import numpy as np
import pytest

import provenance
from lazyrich.core.checks import MemoryEstimateError
from provenance import observational as obs
from provenance import suffix_index as si
from provenance import suffix_matches


def random_corpus(seed, vocab=4):
    """Short examples over a tiny vocabulary (many repeated tokens and spans), some empty, and
    texts that copy spans, cross example boundaries and hold ids outside the vocabulary."""
    rng = np.random.default_rng(seed)
    examples = [rng.integers(0, vocab, rng.integers(0, 14)) for _ in range(30)]
    examples[0] = rng.integers(0, vocab, 5)
    joined = np.concatenate(examples[3:6])
    texts = [rng.integers(0, vocab + 1, rng.integers(1, 30)) for _ in range(3)]
    texts += [examples[0][1:], joined, np.array([1, 2, 300, 1, 2, 2**40, 3, 0])]
    return examples, texts


@pytest.mark.parametrize("seed", range(6))
def test_suffix_index_scores_equal_the_hashed_index(seed, tmp_path):
    """Longest-match lengths, scores for every weight and count, and the order test's rho and p
    are identical with the on-disk and the in-memory index (the latter is checked against a
    brute-force dict of spans in test_provenance_observational)."""
    examples, texts = random_corpus(seed)
    min_length, max_length = 1 + seed % 3, 6
    hashed = obs.build_span_index(examples, min_length=min_length, max_length=max_length)
    disk = si.build_suffix_index(examples, tmp_path / "index.bin", min_length=min_length,
                                 max_length=max_length)
    np.testing.assert_array_equal(obs.longest_matches(disk, texts)[0],
                                  obs.longest_matches(hashed, texts)[0])
    for weight in ("count", "length"):
        for count in ("occurrences", "examples"):
            np.testing.assert_array_equal(
                obs.span_overlap_scores(disk, texts, weight=weight, count=count),
                obs.span_overlap_scores(hashed, texts, weight=weight, count=count))
    # real-valued weights are summed in another order: equal to float64 rounding
    weights = np.random.default_rng(seed).uniform(size=sum(map(len, texts)))
    np.testing.assert_allclose(obs.span_overlap_scores(disk, texts, weight=weights),
                               obs.span_overlap_scores(hashed, texts, weight=weights), rtol=1e-13)
    order = np.random.default_rng(seed + 10).permutation(len(examples))
    ours = provenance.span_overlap_test(disk, texts, order)
    reference = provenance.span_overlap_test(hashed, texts, order)
    assert ours.statistic == reference.statistic and ours.pvalue == reference.pvalue


def test_blocks_hold_exactly_the_occurrences(tmp_path):
    """Each matched position's suffix-array block lists every occurrence of its span inside an
    example (brute force over all example positions) and nothing else; a span that only occurs
    across an example boundary does not match."""
    examples, texts = random_corpus(3)
    index = si.build_suffix_index(examples, tmp_path / "index.bin", min_length=1, max_length=5)
    text = np.concatenate(texts[:3])
    length, first, stop = suffix_matches.matches(index, text)
    for i in np.flatnonzero(length):
        span = tuple(text[i:i + length[i]])
        expected = sorted((j, k) for j, example in enumerate(examples)
                          for k in range(len(example) - len(span) + 1)
                          if tuple(example[k:k + len(span)]) == span)
        positions = index.suffixes[first[i]:stop[i]].astype(int)
        example_of = np.searchsorted(index.starts, positions, side="right") - 1
        found = sorted(zip(example_of.tolist(), (positions - index.starts[example_of]).tolist(),
                           strict=True))
        assert found == expected
    boundary = si.build_suffix_index([np.array([1, 2]), np.array([3, 4])], tmp_path / "b.bin",
                                     min_length=2, max_length=4)
    assert suffix_matches.matches(boundary, np.array([2, 3]))[0].tolist() == [0, 0]


@pytest.mark.parametrize("vocab", [200, 60_000, 70_000])
def test_token_width_follows_the_vocabulary(vocab, tmp_path):
    """uint8 / uint16 / uint32 tokens by the largest id; suffixes come out in lexicographic
    order of the token sequences (checked against Python's tuple sort)."""
    rng = np.random.default_rng(vocab)
    tokens = rng.integers(vocab - 3, vocab, 400)
    offsets = np.array([0, 150, 150, 400])
    index = si.build_suffix_index(tokens, tmp_path / "i.bin", offsets=offsets)
    assert index.stream.dtype.itemsize == {200: 1, 60_000: 2, 70_000: 4}[vocab]
    stream = index.stream.astype(int).tolist()
    keys = [tuple(stream[p:p + 40]) for p in index.suffixes.astype(int)]
    assert keys == sorted(keys) and len(keys) == 400


def test_file_is_small_and_reopens_with_other_lengths(tmp_path):
    """6 bytes per token plus the header and offsets for a uint16 vocabulary; reopening keeps
    the stored span lengths unless others are asked for."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50_000, 100_000)
    path = tmp_path / "i.bin"
    si.build_suffix_index(tokens, path, offsets=np.arange(0, 100_001, 1000), max_length=7)
    assert path.stat().st_size < 6 * 100_000 + 4096
    assert si.open_suffix_index(path).max_length == 7
    other = si.open_suffix_index(path, min_length=3, max_length=4)
    assert (other.min_length, other.max_length) == (3, 4)
    assert list(tmp_path.iterdir()) == [path]  # no temporary left behind


def damage(path, how):
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(data[:-100])
    elif how == "flipped":
        data[-50] ^= 0xFF
        path.write_bytes(data)
    elif how == "magic":
        path.write_bytes(b"PK\x03\x04" + data[4:])
    elif how == "version":
        path.write_bytes(data.replace(b'"version": 1', b'"version": 9'))
    elif how == "header":
        path.write_bytes(data.replace(b'"suffixes"', b'"suffixez"'))


@pytest.mark.parametrize(("how", "fragment"), [
    ("truncated", "truncated"), ("flipped", "CRC32"), ("magic", "not a provenance suffix"),
    ("version", "version 9"), ("header", "lacks section")])
def test_damaged_or_foreign_files_are_refused_by_name(how, fragment, tmp_path):
    path = tmp_path / "i.bin"
    si.build_suffix_index(np.arange(1000) % 37, path, offsets=np.array([0, 500, 1000]))
    damage(path, how)
    with pytest.raises(si.SuffixIndexError, match=fragment) as error:
        si.open_suffix_index(path)
    assert str(path) in str(error.value)


def test_bad_input_and_mismatched_order_are_refused(tmp_path, monkeypatch):
    """Errors name the argument; a failed write leaves nothing; memory is checked first."""
    path = tmp_path / "i.bin"
    with pytest.raises(FileNotFoundError, match="no suffix index"):
        si.open_suffix_index(path)
    with pytest.raises(ValueError, match="max_length=1 is below min_length=2"):
        si.build_suffix_index([np.arange(5)], path, min_length=2, max_length=1)
    with pytest.raises(ValueError, match="token id 4294967295"):
        si.build_suffix_index([np.array([0, 2**32 - 1])], path)
    with pytest.raises(ValueError, match="does not exist"):
        si.build_suffix_index([np.arange(5)], tmp_path / "missing" / "i.bin")
    monkeypatch.setenv("LAZYRICH_MEMORY_BYTES", "1000")
    with pytest.raises(MemoryEstimateError, match="suffix index"):
        si.build_suffix_index([np.arange(5000)], path)
    monkeypatch.delenv("LAZYRICH_MEMORY_BYTES")
    monkeypatch.setattr(si.os, "fsync", lambda _: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        si.build_suffix_index([np.arange(50)], path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    index = si.build_suffix_index([np.arange(5), np.arange(3)], path, min_length=2)
    with pytest.raises(ValueError, match=r"order must be finite numbers of shape \(2,\)"):
        provenance.span_overlap_test(index, np.arange(4), np.arange(3))


@pytest.mark.slow
def test_ten_million_token_build_matches_the_hashed_index(tmp_path):
    """1e7 Zipf tokens in 40,000 examples: the suffix index builds in under a minute, its file
    is about 6 bytes per token, a text copying 10 tokens from each of the last 10,000 examples
    gives p < 1e-8, and its scores on that text equal the hashed index's on the first 1e6
    tokens' examples (the hashed index would need ~1.7 GB at 1e7)."""
    import time

    rng = np.random.default_rng(8)
    n = 10_000_000
    tokens = np.minimum(rng.zipf(1.2, n), 50_000) - 1
    offsets = np.append(np.arange(0, n, 250), n)
    text = [tokens[start + 100:start + 110] for start in offsets[30_000:40_000]]
    start = time.perf_counter()
    path = tmp_path / "big.bin"
    si.build_suffix_index(tokens, path, offsets=offsets, max_length=6)
    assert time.perf_counter() - start < 60
    assert path.stat().st_size < 6.1 * n
    disk = si.open_suffix_index(path, min_length=4)
    result = provenance.span_overlap_test(disk, text, np.arange(40_000))
    assert result.log10_pvalue < -8
    small = 1_000_000
    part = si.build_suffix_index(tokens[:small], tmp_path / "small.bin",
                                 offsets=offsets[:small // 250 + 1], min_length=4, max_length=6)
    hashed = obs.build_span_index(tokens[:small], offsets=offsets[:small // 250 + 1],
                                  min_length=4, max_length=6)
    np.testing.assert_array_equal(obs.span_overlap_scores(part, text),
                                  obs.span_overlap_scores(hashed, text))
