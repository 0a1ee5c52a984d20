"""Training, measuring and caching the built-in judges of an attribute (its *panel*).

For an attribute (see `attributes.py`) judges of different kinds are trained on
the `judge` split of its packaged datasets — 30% of each dataset, disjoint from
the `train` split that modules learn from (see `data/split.py`), so a judge never
grades a module on the texts that module was trained on — and each is measured
on every dataset's `test` split:

    <encoder>-logreg  a packaged encoder's sentence embeddings + logistic regression
                      (the attribute's `encoders`: minilm, mpnet; see features.py)
    tfidf-logreg      TF-IDF word 1–2-grams + logistic regression
    vader             VADER lexicon (sentiment; no training)
    counts-nb         word-count multinomial naive Bayes (topic)

Cross-domain check: with several datasets, each trainable judge is trained again
without dataset X (on the others' judge splits) and scored on X's test split
(leave one dataset out), beside its in-domain accuracy. The embeddings are
computed once per text and shared by both fits, so the check costs only the
extra logistic regressions. The held-out embedding judges are kept
(`held-out/<X>/`), measured on every test split: the judge trained without X is
the independent judge of modules that learnt from X alone (`independent.py`).
Every judge is also measured on the attribute's hand-written texts outside the
packaged corpora (`hand_written.py`), where they exist.

Texts are drawn per (dataset, label), at most a cap each, by a seeded sample
(the same settings and data give the same texts), and cut to their first
`max_words` words — generations are short, so the judges learn from (and are
measured on) text of that length. Embedding is the slow part, so embedding
judges have their own, smaller cap.

The panel is written once to `cache_dir()/judges/<attribute>-<key>/`, key = hash
of the attribute, the settings, the datasets' content hashes, the encoder
packages' versions and the format version; later calls load it in well under a
second (after the datasets are read to compute the key).
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from loracompose.data import load_attribute_dataset
from loracompose.errors import LoraComposeError
from loracompose.evaluate.attributes import ATTRIBUTES, AttributeSpec
from loracompose.evaluate.ensemble import Verdicts, unique_hits
from loracompose.evaluate.hand_written import hand_written, hand_written_hash
from loracompose.evaluate.features import ENCODERS, NgramSettings, NgramVectorizer, embed, encoder_version
from loracompose.evaluate.judges import Judge, LexiconJudge, LinearJudge, VaderJudge, first_words, load_judge
from loracompose.evaluate.linear import fit_logistic_regression, fit_naive_bayes
from loracompose.paths import atomic_directory, cache_dir, write_text_atomic

FORMAT_VERSION = 4  # 4: held-out judges kept (independent judging); hand-written texts measured
VOTE = "vote"  # the ensemble's majority vote, measured like a judge
JUDGE_SPLIT = "judge"  # the split judges train on (never the modules' `train`)


@dataclass(frozen=True)
class JudgeSettings:
    max_words: int = 64  # texts cut to their first words, in training, measuring and use
    # training texts per (dataset, label) for the embedding judges; mpnet on Rotten Tomatoes (its judge
    # split alone, 878 test texts): 80 → 0.797, 200 → 0.799, 400 → 0.839, 600 → 0.839, 1300 → 0.835
    embed_per_label: int = 400
    ngram_per_label: int = 4000  # training texts per (dataset, label) for the n-gram judges
    test_per_label: int = 500  # test texts per (dataset, label) to measure each judge
    minilm_c: float = 0.3  # inverse L2 strength of the logistic regression on (any encoder's) embeddings
    tfidf_c: float = 5.0  # ... and on TF-IDF features (sparser, wants less regularisation)
    seed: int = 0
    cross_domain: bool = True  # also measure leave-one-dataset-out judges (attributes with several datasets)

    def __post_init__(self):
        for name in ("max_words", "embed_per_label", "ngram_per_label", "test_per_label"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise LoraComposeError(f"judge setting {name}={getattr(self, name)!r} must be a whole number >= 1")
        for name in ("minilm_c", "tfidf_c"):
            if not getattr(self, name) > 0:
                raise LoraComposeError(f"judge setting {name}={getattr(self, name)!r} must be positive")


@dataclass
class JudgePanel:
    """The judges of one attribute with each judge's measured test accuracy."""

    attribute: str
    labels: list[str]
    judges: list[Judge]
    # judge name (and "vote" for the ensemble) → dataset → {"accuracy": float, "n": int}
    accuracy: dict[str, dict[str, dict]] = field(default_factory=dict)
    primary: str | None = None  # dataset whose accuracy is the headline
    provenance: dict = field(default_factory=dict)
    # judge name (and "vote") → dataset X → accuracy on X's test of the judge trained without X
    cross_domain: dict[str, dict[str, dict]] = field(default_factory=dict)
    build_seconds: float | None = None  # training + measuring, from an empty cache
    non_voting: tuple[str, ...] = ()  # judges reported beside the vote but not in it
    # dataset X → {"judges", "trained_on", "accuracy", "hand_written"}: the embedding judges trained without X
    held_out: dict[str, dict] = field(default_factory=dict)
    hand_written: dict[str, dict] = field(default_factory=dict)  # judge → accuracy on hand-written texts
    directory: Path | None = None

    def held_out_judge(self, dataset: str, name: str) -> Judge:
        """The judge `name` trained without `dataset` (see `held_out`)."""
        return load_judge(self.directory / "held-out" / dataset / name)

    @property
    def voting(self) -> list[bool]:
        """Per judge in `judges`: does it vote (user judges added later do)."""
        return [j.name not in self.non_voting for j in self.judges]

    def headline(self, judge: str) -> float | None:
        scores = self.accuracy.get(judge, {})
        entry = scores.get(self.primary) if self.primary else None
        return entry["accuracy"] if entry else None


@functools.lru_cache(maxsize=None)
def _dataset(name: str):
    """A packaged dataset, read once per process (its content hash keys the cache)."""
    return load_attribute_dataset(name)


def _select(dataset, split: str, label: str, cap: int, seed: int, max_words: int) -> list[str]:
    texts = dataset.texts(split, label)  # sorted by text: independent of file order
    if len(texts) > cap:
        texts = random.Random(f"{seed}:{dataset.name}:{split}:{label}").sample(texts, cap)
    return [first_words(t, max_words) for t in texts]


def _pool(datasets, spec: AttributeSpec, split: str, cap: int, settings: JudgeSettings):
    texts, labels = [], []
    for d in datasets:
        for label in spec.labels:
            chosen = _select(d, split, label, cap, settings.seed, settings.max_words)
            texts += chosen
            labels += [label] * len(chosen)
    return texts, labels


def _panel_key(spec: AttributeSpec, settings: JudgeSettings, hashes: dict[str, str]) -> str:
    blob = json.dumps({"format": FORMAT_VERSION, "attribute": asdict(spec), "settings": asdict(settings),
                       "data": hashes, "encoders": {e: encoder_version(e) for e in spec.encoders}},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class _Embeddings:
    """Sentence embeddings of one build, computed once per (encoder, text)."""

    def __init__(self, progress: bool):
        self.progress, self.vectors = progress, {}

    def __call__(self, encoder: str, texts: list[str]) -> np.ndarray:
        store = self.vectors.setdefault(encoder, {})
        new = list(dict.fromkeys(t for t in texts if t not in store))
        if new:
            if self.progress:
                print(f"embedding {len(new)} texts with {ENCODERS[encoder].model} (once; cached)")
            store.update(zip(new, embed(encoder, new, progress=self.progress)))
        return np.stack([store[t] for t in texts]) if texts else np.zeros((0, ENCODERS[encoder].dim), np.float32)


def _train(spec: AttributeSpec, datasets, settings: JudgeSettings, embeddings: _Embeddings) -> list[Judge]:
    """The attribute's judges, trained on the judge splits of `datasets`."""
    labels = list(spec.labels)
    judges: list[Judge] = []
    if spec.encoders:
        texts, y = _pool(datasets, spec, JUDGE_SPLIT, settings.embed_per_label, settings)
        for encoder in spec.encoders:
            head = fit_logistic_regression(embeddings(encoder, texts), y, labels, c=settings.minilm_c,
                                           seed=settings.seed)
            judges.append(LinearJudge(f"{encoder}-logreg", spec.name, labels, encoder, head, None,
                                      settings.max_words))
    texts, y = _pool(datasets, spec, JUDGE_SPLIT, settings.ngram_per_label, settings)
    tfidf = NgramVectorizer.fit(texts, NgramSettings("tfidf"))
    judges.append(LinearJudge("tfidf-logreg", spec.name, labels, "tfidf",
                              fit_logistic_regression(tfidf.transform(texts), y, labels, c=settings.tfidf_c,
                                                      seed=settings.seed),
                              tfidf, settings.max_words))
    if spec.third == "naive-bayes":
        counts = NgramVectorizer.fit(texts, NgramSettings("counts", ngram_max=1))
        judges.append(LinearJudge("counts-nb", spec.name, labels, "counts",
                                  fit_naive_bayes(counts.transform(texts), y, labels), counts, settings.max_words))
    else:
        judges.append(VaderJudge(max_words=settings.max_words))
        judges.append(LexiconJudge(max_words=settings.max_words))
    return judges


def _probabilities(judge: Judge, texts: list[str], embeddings: _Embeddings | None) -> np.ndarray:
    if embeddings is not None and isinstance(judge, LinearJudge) and judge.features in ENCODERS:
        return judge.head.predict_proba(embeddings(judge.features, texts))  # texts already cut to max_words
    return judge.predict_proba(texts)


def _measure(judges: list[Judge], spec: AttributeSpec, datasets, settings: JudgeSettings,
             progress: bool, embeddings: _Embeddings | None = None) -> dict[str, dict[str, dict]]:
    """Each judge's test accuracy per dataset, and (with several judges) the ensemble vote's as `vote`."""
    accuracy: dict[str, dict[str, dict]] = {j.name: {} for j in judges}
    for d in datasets:
        texts, y = _pool([d], spec, "test", settings.test_per_label, settings)
        truth = np.array([spec.labels.index(label) for label in y])
        if progress:
            print(f"measuring {len(judges)} {spec.name} judge(s) on {len(texts)} {d.name} test texts")
        probabilities = [_probabilities(judge, texts, embeddings) for judge in judges]
        results = {j.name: unique_hits(p, truth) for j, p in zip(judges, probabilities)}  # undecided = wrong
        if len(judges) > 1:
            verdicts = Verdicts(list(spec.labels), [j.name for j in judges], np.stack(probabilities),
                                [j.name not in spec.non_voting for j in judges])
            results[VOTE] = verdicts.votes() == truth
        for name, hits in results.items():
            accuracy.setdefault(name, {})[d.name] = {"accuracy": round(float(hits.mean()), 4), "n": int(hits.size)}
    return accuracy


def _cross_domain(spec: AttributeSpec, datasets, settings: JudgeSettings, embeddings: _Embeddings,
                  progress: bool) -> tuple[dict[str, dict[str, dict]], dict[str, tuple[list[Judge], dict]]]:
    """judge → X → accuracy on X's test of the same kind of judge trained on the other datasets only;
    and X → (those held-out embedding judges, their accuracy on every dataset's test split)."""
    result: dict[str, dict[str, dict]] = {}
    held: dict[str, tuple[list[Judge], dict]] = {}
    if len(datasets) < 2 or not settings.cross_domain:
        return result, held
    for held_out in datasets:
        others = [d for d in datasets if d is not held_out]
        if progress:
            print(f"cross-domain: {spec.name} judges trained without {held_out.name}")
        judges = _train(spec, others, settings, embeddings)
        measured = _measure(judges, spec, datasets, settings, False, embeddings)
        for name, scores in measured.items():
            result.setdefault(name, {})[held_out.name] = {**scores[held_out.name],
                                                          "trained_on": [d.name for d in others]}
        kept = [j for j in judges if isinstance(j, LinearJudge) and j.features in ENCODERS]
        held[held_out.name] = (kept, {j.name: measured[j.name] for j in kept})
    return result, held


def _hand_written_accuracy(judges: list[Judge], spec: AttributeSpec, settings: JudgeSettings,
                           embeddings: _Embeddings | None) -> dict[str, dict]:
    """judge → {"accuracy", "n"} on the attribute's hand-written texts (empty where there are none)."""
    texts, labels = hand_written(spec.name)
    if not texts:
        return {}
    texts = [first_words(t, settings.max_words) for t in texts]
    truth = np.array([spec.labels.index(label) for label in labels])
    return {j.name: {"accuracy": round(float(unique_hits(_probabilities(j, texts, embeddings), truth).mean()), 4),
                     "n": len(texts)} for j in judges}


def judge_panel(attribute: str, settings: JudgeSettings = JudgeSettings(), *, progress: bool = True,
                root: Path | None = None) -> JudgePanel:
    """The attribute's built-in judges: loaded from the cache, or trained, measured and cached."""
    if attribute not in ATTRIBUTES:
        raise LoraComposeError(f"no built-in judges for attribute '{attribute}'; built-in: {', '.join(ATTRIBUTES)}")
    spec = ATTRIBUTES[attribute]
    datasets = [_dataset(name) for name in spec.datasets]
    hashes = {d.name: d.content_hash for d in datasets} | {"hand_written": hand_written_hash(attribute)}
    directory = (root or cache_dir() / "judges") / f"{attribute}-{_panel_key(spec, settings, hashes)}"
    if not (directory / "panel.json").is_file():
        start = time.perf_counter()
        embeddings = _Embeddings(progress)
        judges = _train(spec, datasets, settings, embeddings)
        accuracy = _measure(judges, spec, datasets, settings, progress, embeddings)
        cross, held = _cross_domain(spec, datasets, settings, embeddings, progress)
        hand = _hand_written_accuracy(judges, spec, settings, embeddings)
        held_hand = {name: _hand_written_accuracy(kept, spec, settings, embeddings) for name, (kept, _) in held.items()}
        seconds = round(time.perf_counter() - start, 1)
        with atomic_directory(directory, overwrite=True) as staging:
            for judge in judges:
                judge.save(staging / judge.name)
            for name, (kept, _) in held.items():
                for judge in kept:
                    judge.save(staging / "held-out" / name / judge.name)
            (staging / "panel.json").write_text(json.dumps({
                "attribute": attribute, "labels": list(spec.labels), "judges": [j.name for j in judges],
                "accuracy": accuracy, "cross_domain": cross, "primary": spec.primary,
                "held_out": {name: {"judges": [j.name for j in kept], "accuracy": measured,
                                    "trained_on": [d.name for d in datasets if d.name != name],
                                    "hand_written": held_hand[name]}
                             for name, (kept, measured) in held.items()},
                "hand_written": hand,
                "non_voting": [j.name for j in judges if j.name in spec.non_voting],
                "trained_on_split": JUDGE_SPLIT, "build_seconds": seconds, "settings": asdict(settings),
                "data": hashes, "format": FORMAT_VERSION}, indent=2))
    return load_panel(directory)


def load_panel(directory: Path) -> JudgePanel:
    meta = json.loads((directory / "panel.json").read_text())
    judges = [load_judge(directory / name) for name in meta["judges"]]
    provenance = {"directory": str(directory), "settings": meta["settings"], "data": meta["data"],
                  "trained_on": [name for name in meta["data"] if name != "hand_written"],
                  "trained_on_split": meta.get("trained_on_split")}
    return JudgePanel(meta["attribute"], meta["labels"], judges, meta["accuracy"], meta["primary"], provenance,
                      meta.get("cross_domain", {}), meta.get("build_seconds"), tuple(meta.get("non_voting", ())),
                      meta.get("held_out", {}), meta.get("hand_written", {}), directory)


def measure_judge(judge: Judge, settings: JudgeSettings = JudgeSettings(), *, fingerprint: str,
                  progress: bool = True, root: Path | None = None) -> dict[str, dict]:
    """A user judge's test accuracy on its attribute's packaged test splits (cached by `fingerprint`).

    Empty when the attribute has no packaged data (a user's own attribute).
    """
    spec = ATTRIBUTES.get(judge.attribute)
    if spec is None:
        return {}
    datasets = [_dataset(name) for name in spec.datasets]
    hashes = {d.name: d.content_hash for d in datasets}
    key = hashlib.sha256(f"{fingerprint}:{_panel_key(spec, settings, hashes)}".encode()).hexdigest()[:16]
    file = (root or cache_dir() / "judges") / f"user-{judge.attribute}-{key}.json"
    if not file.is_file():
        accuracy = _measure([judge], spec, datasets, settings, progress)[judge.name]
        write_text_atomic(file, json.dumps(accuracy, indent=2))
    return json.loads(file.read_text())
