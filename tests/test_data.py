import pandas as pd
import pytest

from loracompose import LoraComposeError
from loracompose.data import (BUILTIN_DATASETS, DataOptions, Mixing, SplitSizes, load_attribute_dataset,
                              mix_sources)
from loracompose.data.clean import clean_frame, clean_text
from loracompose.data.split import assign_splits


def test_clean_text_known_answers():
    assert clean_text("Great<br /><br />film") == "Great\n\nfilm"
    assert clean_text("a<BR>b<br/>c") == "a\nb\nc"
    assert clean_text("Tom &amp; Jerry &quot;rule&quot;") == 'Tom & Jerry "rule"'
    assert clean_text("bad\ufffd bytes\x07 here") == "bad bytes here"
    assert clean_text("  lots   of\t\tspace \n\n\n\n next ") == "lots of space\n\nnext"


def test_clean_frame_drops_duplicates_and_ambiguous_texts_in_any_order():
    frame = pd.DataFrame({"text": ["same", "same", "clash", "clash", "", "solo"],
                          "label": ["a", "a", "a", "b", "a", "b"]})
    cleaned = clean_frame(frame)
    assert cleaned.to_dict("records") == [{"text": "same", "label": "a"}, {"text": "solo", "label": "b"}]
    assert clean_frame(frame.iloc[::-1]).equals(cleaned)


def test_split_is_stable_when_the_file_is_shuffled(tmp_path):
    texts = [f"text number {i}" for i in range(2000)]
    frame = pd.DataFrame({"text": texts, "label": ["x", "y"] * 1000})
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    frame.to_csv(a, index=False)
    frame.sample(frac=1.0, random_state=7).to_csv(b, index=False)
    da, db = load_attribute_dataset(str(a)), load_attribute_dataset(str(b))
    assert da.frame.equals(db.frame)
    assert da.content_hash == db.content_hash
    # Fractions hold to within sampling noise (2000 texts: sd of the test share ≈ 0.007).
    shares = da.frame["split"].value_counts(normalize=True)
    assert abs(shares["test"] - 0.10) < 0.03 and abs(shares["validation"] - 0.05) < 0.03
    assert abs(shares["judge"] - 0.30) < 0.04 and abs(shares["train"] - 0.55) < 0.04


def test_judge_split_moves_no_test_or_validation_text():
    """The judges' split is carved out of train: test and validation stay as they were without it."""
    texts = pd.Series([f"t{i}" for i in range(2000)])
    without = assign_splits(texts, SplitSizes(judge=0.0))
    with_judge = assign_splits(texts, SplitSizes())
    held = without.isin(["test", "validation"])
    assert (with_judge[held] == without[held]).all()
    assert set(with_judge[~held]) == {"train", "judge"}


def test_split_of_a_text_does_not_depend_on_the_other_texts():
    texts = pd.Series([f"t{i}" for i in range(500)])
    whole = assign_splits(texts, SplitSizes())
    half = assign_splits(texts[:250], SplitSizes())
    assert (whole[:250] == half).all()


def test_split_sizes_are_checked():
    with pytest.raises(LoraComposeError, match="split sizes"):
        SplitSizes(validation=0.6, test=0.5)
    with pytest.raises(LoraComposeError, match="judge=0.9"):
        SplitSizes(judge=0.9)


def test_mixing_shares():
    assert Mixing.parse("concat").shares([300, 100]) == [0.75, 0.25]
    assert Mixing.parse("balanced").shares([300, 100]) == [0.5, 0.5]
    # p_i ∝ (n_i/N)^(1/T): T=2 gives sqrt(0.75):sqrt(0.25) = 0.634:0.366
    t2 = Mixing.parse("temperature:2").shares([300, 100])
    assert t2 == pytest.approx([0.6340, 0.3660], abs=1e-4)
    assert Mixing.parse("temperature:1").shares([300, 100]) == pytest.approx([0.75, 0.25])
    with pytest.raises(LoraComposeError, match="accepted: concat, balanced, temperature:T"):
        Mixing.parse("temperature:-1")


def test_mix_sources_draws_the_shares_deterministically():
    big, small = [f"b{i}" for i in range(300)], [f"s{i}" for i in range(100)]
    mixed = mix_sources([big, small], Mixing.parse("balanced"), seed=3)
    assert len(mixed) == 400
    assert sum(t.startswith("s") for t in mixed) == 200  # small source repeated twice
    assert set(t for t in mixed if t.startswith("s")) == set(small)
    assert mixed == mix_sources([big[::-1], small], Mixing.parse("balanced"), seed=3)  # input order irrelevant
    assert sorted(mix_sources([big, small], Mixing.parse("concat"), seed=1)) == sorted(big + small)


def test_builtin_datasets_have_their_labels():
    imdb = load_attribute_dataset("imdb")
    assert imdb.labels == ["negative", "positive"] and imdb.attribute == "sentiment"
    assert 24_800 <= len(imdb.frame) <= 25_000  # 25k reviews less exact duplicates
    assert not imdb.frame["text"].str.contains("<br", regex=False).any()
    rt = load_attribute_dataset("rotten_tomatoes")
    assert 8_400 <= len(rt.frame) <= 8_530
    bbc = load_attribute_dataset("bbc")
    assert bbc.labels == ["business", "entertainment", "politics", "sport", "tech"]
    assert 2_100 <= len(bbc.frame) <= 2_225
    assert not bbc.frame["text"].str.contains("\ufffd").any()


def test_tweets_min_confidence():
    default = load_attribute_dataset("tweets")
    everything = load_attribute_dataset("tweets", DataOptions(min_confidence=0.0))
    strict = load_attribute_dataset("tweets", DataOptions(min_confidence=0.9))
    assert default.labels == ["negative", "neutral", "positive"]
    assert len(strict.frame) < len(default.frame) < len(everything.frame)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "hf"])
def test_user_files_in_every_format_load_the_same(tmp_path, labelled_frame, fmt):
    path = tmp_path / f"reviews.{fmt}"
    if fmt == "jsonl":
        labelled_frame.to_json(path, orient="records", lines=True)
    elif fmt == "csv":
        labelled_frame.to_csv(path, index=False)
    elif fmt == "parquet":
        labelled_frame.to_parquet(path)
    else:
        import datasets

        datasets.Dataset.from_pandas(labelled_frame).save_to_disk(str(path))
    options = DataOptions(text_column="review", label_column="stars", attribute="quality")
    dataset = load_attribute_dataset(str(path), options)
    assert dataset.labels == ["bad", "good"] and dataset.attribute == "quality"
    assert len(dataset.frame) == 40  # the duplicate is gone
    assert "Line one\n\nline two" in dataset.frame["text"].tolist()


def test_user_file_errors(tmp_path, labelled_frame):
    with pytest.raises(LoraComposeError, match="does not exist"):
        load_attribute_dataset(str(tmp_path / "missing.jsonl"))
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    with pytest.raises(LoraComposeError, match="is empty"):
        load_attribute_dataset(str(empty))
    wrong = tmp_path / "wrong.csv"
    labelled_frame.to_csv(wrong, index=False)
    with pytest.raises(LoraComposeError, match=r"lacks the column\(s\) 'text', 'label'; its columns are 'review', 'stars'"):
        load_attribute_dataset(str(wrong))
    odd = tmp_path / "data.xlsx"
    odd.write_text("x")
    with pytest.raises(LoraComposeError, match="unsupported format '.xlsx'"):
        load_attribute_dataset(str(odd))


def test_unknown_dataset_and_label_list_what_is_known():
    with pytest.raises(LoraComposeError, match="built-in datasets: imdb, rotten_tomatoes, tweets, bbc"):
        load_attribute_dataset("imbd")
    with pytest.raises(LoraComposeError, match="its labels are negative, positive"):
        load_attribute_dataset("rotten_tomatoes").check_label("happy")
    assert set(BUILTIN_DATASETS) == {"imdb", "rotten_tomatoes", "tweets", "bbc"}


def test_rotten_tomatoes_is_detokenised_and_sentence_cased():
    from loracompose.data.builtin import detokenize_review

    assert detokenize_review('" birthday girl " is an actor \'s movie , first and foremost .') == \
        '"Birthday girl" is an actor\'s movie, first and foremost.'
    assert detokenize_review("is it good ? i 'm not sure it is .") == "Is it good? I'm not sure it is."
    texts = load_attribute_dataset("rotten_tomatoes").texts("train")
    assert not any(" ,"in t or " 's" in t or " ." in t for t in texts[:500])


def test_tweets_are_plain_text_without_the_news_story_or_retweets():
    from loracompose.data.builtin import TWEET_STORY, clean_tweet

    assert clean_tweet("RT @Foo: #Apple is #awesome today http://t.co/x1 #win #tech") == "Apple is awesome today"
    assert clean_tweet("@AmericanAir thanks!! _\ufffd\ufffd__ \u0562_") == "thanks!!"
    frame = load_attribute_dataset("tweets").frame
    assert not frame["text"].str.contains(TWEET_STORY).any()
    assert not frame["text"].str.contains(r"https?://|@\w|#", regex=True).any()
    key = frame["text"].str.lower().str.replace(r"[^a-z0-9]+", "", regex=True)
    assert not key.duplicated().any()


def test_sentence_units_split_reviews_into_sentences():
    from loracompose.train import sentence_units

    review = "A Cry in the Dark is a masterful piece of cinema. So long. Meryl Streep does immaculate justice."
    assert sentence_units([review]) == ["A Cry in the Dark is a masterful piece of cinema.",
                                        "Meryl Streep does immaculate justice."]
