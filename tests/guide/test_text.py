from guide.text import detect_lang, split_sentences, tokens


def test_chinese_sentences_end_on_chinese_punctuation_and_newlines():
    assert split_sentences("鞋码偏小，建议买大一码。我平时穿42！这双要43才合适…\n颜色好看；会回购") == [
        "鞋码偏小，建议买大一码。",
        "我平时穿42！",
        "这双要43才合适…",
        "颜色好看；",
        "会回购",
    ]


def test_english_sentences_end_on_sentence_marks_followed_by_space():
    assert split_sentences("Runs small. Otherwise comfy!! Price was $89.5 though?\nWould buy") == [
        "Runs small.",
        "Otherwise comfy!!",
        "Price was $89.5 though?",
        "Would buy",
    ]


def test_emoji_only_empty_and_control_text_give_no_sentences():
    assert split_sentences("👍👍👍") == []
    assert split_sentences("") == []
    assert split_sentences("\x00\x01 ...!!! ") == []


def test_mixed_language_review_keeps_its_words():
    sentences = split_sentences("Nice鞋子 非常comfortable!!! 👍 Fast delivery")
    assert sentences == ["Nice鞋子 非常comfortable!", "👍 Fast delivery"]
    assert detect_lang("Nice鞋子 非常舒服 comfortable") == "zh"
    assert detect_lang("Very comfortable shoes, 好") == "en"
    assert detect_lang("🙂") == "en"


def test_tokens_chinese_unigrams_and_bigrams_english_stems_without_stop_words():
    assert tokens("The batteries are running out") == ["battery", "run"]
    zh = tokens("续航怎么样")
    assert "续航" in zh and "续" in zh and "么样" in zh
    assert "的" not in tokens("质量的问题")
