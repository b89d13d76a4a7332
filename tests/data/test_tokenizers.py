"""Round trips of every tokenizer, and GPT-2's against Hugging Face's reading of the same files."""

import json

import numpy as np
import pytest

from fromscratch import FromScratchError
from fromscratch.data import tokenizers

TRICKY = [
    "Hello, world! It's 2026 — naïve café, 東京, emoji 🎬🍿.",
    "  leading spaces, tabs\tand\nnew lines\r\n  ",
    "",
    "don't can't I'll we've they're 1234567 $3.50",
]
CORPUS = [t * 3 for t in TRICKY] + ["the film was great", "the plot was dull"] * 50


@pytest.fixture(scope="module")
def gpt2_folder(shared_mirror):
    return shared_mirror / "gpt2-bpe"


@pytest.mark.parametrize("kind", ["bytes", "chars", "bpe"])
def test_lossless_round_trip_and_save_load(kind, tmp_path):
    tok = tokenizers.fit(kind, CORPUS, vocab_size=400)
    for text in TRICKY:
        assert tok.decode(tok.encode(text)) == text
    tok.save(tmp_path)
    loaded = tokenizers.load(tmp_path)
    batch = tok.encode_batch(TRICKY)
    assert [a.tolist() for a in loaded.encode_batch(TRICKY)] == [a.tolist() for a in batch]
    assert loaded.vocab_size == tok.vocab_size and all(
        a.max(initial=0) < tok.vocab_size for a in batch
    )


def test_a_full_vocabulary_keeps_its_size_and_every_special_token():
    """words: vocab_size counts <pad>, <unk> and the separator, and the most frequent
    words fill the rest; chars: <unk> (for another split's unseen characters) and the
    separator each an id of their own."""
    documents = ["the film was great and long", "the plot was dull", "a film"]
    words = tokenizers.fit("words", documents, vocab_size=6)
    assert words.vocab_size == 6 and len(set(words.words)) == 6
    assert words.words[:3] == [tokenizers.PAD, tokenizers.UNK, tokenizers.EOT]
    assert words.words[3:] == ["the", "film", "was"]  # twice each, then the rest once
    chars = tokenizers.fit("chars", documents, others=["dull!"])
    unknown, eot = chars.encode("!").tolist()[0], chars.eot
    assert len({unknown, eot}) == 2 and chars.vocab_size == len(set(" ".join(documents))) + 2
    assert chars.decode([unknown, eot]) == tokenizers.UNK + tokenizers.EOT


@pytest.mark.parametrize("kind", ["bytes", "chars", "bpe", "gpt2"])
def test_the_bytes_and_characters_of_tokens_add_up_to_the_texts(kind, request):
    """What bits per byte and per character of a part of a split divide by."""
    folder = request.getfixturevalue("gpt2_folder") if kind == "gpt2" else None
    tok = tokenizers.fit(kind, CORPUS, vocab_size=400, gpt2_folder=folder)
    lengths, starts = tok.byte_counts
    assert len(lengths) == len(starts) == tok.vocab_size
    for text in TRICKY:
        ids = tok.encode(text)
        assert (lengths[ids].sum(), starts[ids].sum()) == (len(text.encode()), len(text))


@pytest.mark.parametrize("kind", tokenizers.KINDS)
def test_a_vocabulary_of_several_documents_has_a_separator_no_text_gives(kind, request, tmp_path):
    """The separator ends a document in a language model's stream (PreparedData.stream)."""
    folder = request.getfixturevalue("gpt2_folder") if kind == "gpt2" else None
    documents = [*CORPUS, f"a review that quotes {tokenizers.EOT}"]
    several = tokenizers.fit(kind, documents, vocab_size=400, gpt2_folder=folder)
    book = tokenizers.fit(kind, [" ".join(documents)], vocab_size=400, gpt2_folder=folder)
    assert book.eot is None  # one document needs none
    if kind not in ("bpe", "gpt2"):  # whose vocabularies hold the token either way
        assert several.vocab_size == book.vocab_size + 1
    eot = several.eot
    assert several.decode([eot]) == tokenizers.EOT
    for text in [*TRICKY, tokenizers.EOT, f"a{tokenizers.EOT}b"]:  # that text is text
        assert eot not in several.encode(text).tolist()
    if kind != "words":  # lossless: its tokens count the bytes they stand for, the separator none
        assert several.byte_counts[0][eot] == several.byte_counts[1][eot] == 0
    several.save(tmp_path)
    loaded = tokenizers.load(tmp_path)
    assert (loaded.eot, loaded.vocab_size) == (eot, several.vocab_size)
    quoted = f"a{tokenizers.EOT}"
    assert loaded.encode(quoted).tolist() == several.encode(quoted).tolist()


@pytest.mark.parametrize("kind", ["bytes", "chars", "bpe", "gpt2"])
def test_a_tokenizer_saved_before_separators_loads_without_one(kind, request, tmp_path):
    """Its models never read a separator: GPT-2's and BPE's vocabularies have the token,
    but their folders' streams did not."""
    folder = request.getfixturevalue("gpt2_folder") if kind == "gpt2" else None
    saved = tokenizers.fit(kind, CORPUS, vocab_size=400, gpt2_folder=folder)
    saved.save(tmp_path)
    spec = json.loads((tmp_path / tokenizers.FILE).read_text())
    del spec["eot"]
    (tmp_path / tokenizers.FILE).write_text(json.dumps(spec))
    loaded = tokenizers.load(tmp_path)
    in_vocabulary = kind in ("bpe", "gpt2")
    assert loaded.eot is None and loaded.vocab_size == saved.vocab_size - (not in_vocabulary)
    assert loaded.decode(loaded.encode(TRICKY[0])) == TRICKY[0]
    # a model keeps its data's fingerprint: data made since, with separators, is not its
    assert tokenizers.fingerprint(loaded) != tokenizers.fingerprint(saved)


def test_the_fingerprint_tells_apart_tokens_that_are_no_whole_character(tmp_path):
    """Two BPE vocabularies that differ only in which id stands for which UTF-8
    continuation byte: both ids decode to U+FFFD, so the fingerprint of the tokens' text,
    which models kept before, is the same; that of their bytes tells them apart. A model
    that kept the old one still agrees with its own data."""
    from fromscratch.train.models import tokenizers_agree

    trained = tokenizers.fit("bpe", CORPUS, vocab_size=400)
    trained.save(tmp_path)
    file = tmp_path / "tokenizer.bpe.json"
    spec = json.loads(file.read_text(encoding="utf-8"))
    as_char = {byte: char for char, byte in tokenizers._gpt2_byte_alphabet().items()}
    vocab, first, second = spec["model"]["vocab"], as_char[0x80], as_char[0x81]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    file.write_text(json.dumps(spec), encoding="utf-8")
    swapped = tokenizers.load(tmp_path)
    assert swapped.decode([vocab[first]]) == swapped.decode([vocab[second]]) == "\ufffd"

    assert tokenizers.fingerprint(swapped) != tokenizers.fingerprint(trained)
    by_text = tokenizers.fingerprint(trained, as_text=True)
    assert tokenizers.fingerprint(swapped, as_text=True) == by_text
    assert not tokenizers_agree(swapped, {"data_tokenizer": tokenizers.fingerprint(trained)})
    assert tokenizers_agree(trained, {"data_tokenizer": by_text})  # a model.pt saved before


def test_gpt2_matches_known_ids_and_huggingface(gpt2_folder, tmp_path):
    from transformers import GPT2TokenizerFast

    tok = tokenizers.fit("gpt2", [], gpt2_folder=gpt2_folder, separator=True)
    assert tok.vocab_size == 50257 and tok.eot == 50256
    assert tok.encode("Hello world").tolist() == [15496, 995]
    merges = (gpt2_folder / "vocab.bpe").read_text(encoding="utf-8").split("\n")[1:]
    hf = GPT2TokenizerFast(
        vocab=json.loads((gpt2_folder / "encoder.json").read_text(encoding="utf-8")),
        merges=[tuple(m.split()) for m in merges if m],
    )
    for text in TRICKY:
        assert tok.encode(text).tolist() == hf.encode(text)
        assert tok.decode(tok.encode(text)) == text
    tok.save(tmp_path)
    assert tokenizers.load(tmp_path).encode(TRICKY[0]).tolist() == tok.encode(TRICKY[0]).tolist()


def test_words_are_lowercased_with_pad_and_unk():
    tok = tokenizers.fit("words", ["The film was GREAT .", "the plot was dull"], vocab_size=100)
    assert not tok.lossless
    ids = tok.encode("the FILM was dull , great")
    assert tok.decode(ids) == "the film was dull <unk> great"  # "," was never seen
    assert tok.decode(tok.encode("a superb film")) == "<unk> <unk> film"
    assert tok.words[:2] == ["<pad>", "<unk>"]


def test_words_keep_only_the_top_k():
    tok = tokenizers.fit("words", ["a a a a b b b c c d"], vocab_size=4)  # <pad> <unk> a b
    assert tok.vocab_size == 4
    assert tok.decode(tok.encode("a b c d")) == "a b <unk> <unk>"


def test_chars_add_unk_only_when_other_splits_need_it():
    assert not tokenizers.fit("chars", ["abc"], ["cab"]).unk
    tok = tokenizers.fit("chars", ["abc"], ["abz"])
    assert tok.vocab_size == 4 and tok.decode(tok.encode("az")) == "a<unk>"
    strict = tokenizers.fit("chars", ["abc"])
    with pytest.raises(FromScratchError) as error:
        strict.encode("zebra ü z")  # each character it lacks, once
    assert str(error.value) == (
        "not in the vocabulary: 'z', 'e', 'r', ' ', 'ü'; it has 3 characters: 'abc'"
    )
    with pytest.raises(FromScratchError) as error:  # every text's, not the first one's alone
        strict.encode_batch(["abz", "cab", "éa–"])
    assert str(error.value).startswith("not in the vocabulary: 'z', 'é', '–'; ")


def test_chars_are_lossless_only_without_unk(tmp_path):
    tok = tokenizers.fit("chars", ["ab"], ["abc"])
    assert tok.decode(tok.encode("abc")) == "ab<unk>"
    assert not tok.lossless
    tok.save(tmp_path)
    assert not tokenizers.load(tmp_path).lossless
    assert tokenizers.fit("chars", ["abc"], ["cab"]).lossless


def test_bytes_take_raw_bytes_too():
    tok = tokenizers.fit("bytes", [])
    assert tok.encode(b"\xff\x00").tolist() == [255, 0]
    assert np.array_equal(tok.encode("é"), [0xC3, 0xA9])


def test_unknown_kind_names_the_allowed():
    with pytest.raises(FromScratchError, match="allowed: bytes, chars, words, bpe, gpt2"):
        tokenizers.fit("wordpiece", [])


@pytest.mark.parametrize(
    ("written", "named"),
    [
        ({"tokenizer.json": '{"version": "1.0"}'}, "not a tokenizer `fromscratch data prepare`"),
        ({"tokenizer.json": "not json"}, "tokenizer.json: not a readable JSON file"),
        ({"tokenizer.json": '{"kind": "words"}'}, "its words tokenizer cannot be read ('words')"),
        (
            {"tokenizer.json": '{"kind": "gpt2", "folder": "gpt2-bpe"}'},
            "its gpt2 tokenizer cannot be read (",
        ),
        (
            {"tokenizer.json": '{"kind": "bpe", "file": "tokenizer.bpe.json"}'},
            "its bpe tokenizer cannot be read (",
        ),
        (  # a copy cut short
            {
                "tokenizer.json": '{"kind": "bpe", "file": "tokenizer.bpe.json"}',
                "tokenizer.bpe.json": '{"version": "1.0", "model": {"type": "BPE", "vocab": {',
            },
            "its bpe tokenizer cannot be read (EOF while parsing",
        ),
        (
            {"tokenizer.json": '{"kind": "chars", "chars": 5, "unk": null}'},
            "its chars tokenizer cannot be read (",
        ),
    ],
)
def test_a_tokenizer_that_cannot_be_read_is_one_line(tmp_path, written, named):
    """--tokenizer-from may name any folder: a Hugging Face tokenizer's, a copy missing a
    file."""
    for name, text in written.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(FromScratchError) as e:
        tokenizers.load(tmp_path)
    assert named in str(e.value) and "\n" not in str(e.value)
    # a tokenizer.json of a kind of ours marks a prepared folder, even with a file missing
    assert tokenizers.is_saved_in(tmp_path) == ("cannot be read" in named)


def test_words_keep_a_run_of_punctuation_as_one_word():
    """A run of punctuation is one word ("!!!", "..."), and so are the separator's `<|`
    and `|>`: no text gives the separator."""
    tok = tokenizers.fit("words", ["Great!!! ... not bad?!"], vocab_size=100)
    assert tok.words[2:] == ["great", "!!!", "...", "not", "bad", "?!"]
    assert tok.decode(tok.encode("bad!!! ...")) == "bad !!! ..."
    assert tokenizers.WordTokenizer.PATTERN.findall(tokenizers.EOT) == ["<|", "endoftext", "|>"]


def test_the_fingerprint_tells_apart_vocabularies_whose_tokens_join_to_the_same_text():
    """["ab", "c"] and ["a", "bc"] are other ids for other words, though their texts,
    run together, are the same."""
    special = [tokenizers.PAD, tokenizers.UNK]
    one = tokenizers.WordTokenizer([*special, "ab", "c"])
    other = tokenizers.WordTokenizer([*special, "a", "bc"])
    assert tokenizers.fingerprint(one) != tokenizers.fingerprint(other)
    assert tokenizers.fingerprint(one) == tokenizers.fingerprint(
        tokenizers.WordTokenizer([*special, "ab", "c"])
    )


@pytest.mark.parametrize(("kind", "smallest"), [("words", 4), ("bpe", 257)])
def test_the_smallest_vocabulary_has_its_special_tokens_and_one_more(kind, smallest):
    """words: <pad>, <unk>, the separator and one word; bpe: the 256 bytes and the
    separator. One less is refused."""
    tokenizers.check_vocab_size(kind, smallest)
    with pytest.raises(FromScratchError, match=f"too small for {kind!r}: at least {smallest}"):
        tokenizers.check_vocab_size(kind, smallest - 1)
    if kind == "words":
        tok = tokenizers.fit(kind, ["a b a", "b a"], vocab_size=smallest)
        assert tok.words == [tokenizers.PAD, tokenizers.UNK, tokenizers.EOT, "a"]
