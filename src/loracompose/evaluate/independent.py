"""The independent judge: the judge that decides a headline shares no training corpus with the modules.

A judge trained on Rotten Tomatoes' judge split never saw the texts a Rotten
Tomatoes module learnt from, but it learnt the same critics' style, and calls
critic-style text negative where a reader sees nothing negative. So the judge of
a headline must share no *corpus* with the modules under test. Candidates for an
attribute, each with the corpora it learnt from:

    panel                 the in-domain panel's majority vote (all the attribute's packaged datasets)
    mpnet-logreg-without-X  the panel's embedding judge trained again without dataset X
                          (kept from the panel's leave-one-out check, `panel.py`)
    lexicons              VADER + TextBlob + AFINN (`lexicon.py`): no corpus at all

`auto` picks, from the modules' metadata (their datasets, by name and content
hash), the first candidate in the order above whose corpora the modules' do not
touch: modules that learnt from Rotten Tomatoes alone are judged by the mpnet
judge trained on IMDb and tweets; modules that learnt from all three corpora (the
study's) by the lexicons, and so are modules that record no datasets (nothing can
be shown independent of an unknown corpus). Asking for an overlapping judge by name is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loracompose.errors import LoraComposeError
from loracompose.evaluate.judges import Judge, LexiconJudge
from loracompose.evaluate.panel import JudgePanel
from loracompose.modules import ModuleInfo

AUTO = "auto"
PANEL = "panel"
LEXICONS = "lexicons"


@dataclass
class IndependentJudge:
    """The judge chosen to decide a headline, and why it may."""

    name: str
    judge: Judge | None  # None for `panel` (its vote is read from the panel)
    corpora: tuple[str, ...]  # what it learnt from
    module_corpora: tuple[str, ...]  # what the modules learnt from
    accuracy: dict[str, dict] = field(default_factory=dict)  # dataset (and "hand_written") → {"accuracy", "n"}

    def record(self) -> dict:
        return {"name": self.name, "corpora": list(self.corpora), "module_corpora": list(self.module_corpora),
                "accuracy": self.accuracy,
                "model": self.judge.describe()["model"] if self.judge is not None else "the in-domain panel's vote"}


def module_corpora(modules: dict[str, ModuleInfo] | list[ModuleInfo]) -> dict[str, str | None]:
    """dataset name → content hash over the modules' metadata (what they learnt from)."""
    infos = modules.values() if isinstance(modules, dict) else modules
    corpora: dict[str, str | None] = {}
    for info in infos:
        for entry in info.metadata.get("datasets", []) or []:
            if isinstance(entry, dict) and entry.get("name"):
                corpora[str(entry["name"])] = entry.get("content_hash")
    return corpora


def candidates(panel: JudgePanel) -> dict[str, tuple[tuple[str, ...], dict]]:
    """name → (corpora it learnt from, measured accuracy), in the order `auto` tries them."""
    voters = [j.name for j, votes in zip(panel.judges, panel.voting) if votes]
    one_voter = voters[0] if len(voters) == 1 else None  # the vote is that judge's own verdict
    vote_hand = {"hand_written": panel.hand_written[one_voter]} if one_voter in panel.hand_written else {}
    found = {PANEL: (tuple(panel.provenance.get("trained_on", ())), {**panel.accuracy.get("vote", {}), **vote_hand})}
    for held_out, entry in panel.held_out.items():
        for name in entry["judges"]:
            accuracy = {**entry["accuracy"].get(name, {}), **({"hand_written": entry["hand_written"][name]}
                                                             if name in entry.get("hand_written", {}) else {})}
            found[f"{name}-without-{held_out}"] = (tuple(entry["trained_on"]), accuracy)
    if any(j.name == LEXICONS for j in panel.judges):
        hand = {"hand_written": panel.hand_written[LEXICONS]} if LEXICONS in panel.hand_written else {}
        found[LEXICONS] = ((), {**panel.accuracy.get(LEXICONS, {}), **hand})
    return found


def _hashes(panel: JudgePanel) -> dict[str, str]:
    return {name: h for name, h in panel.provenance.get("data", {}).items() if name != "hand_written" and h}


def _overlap(corpora: tuple[str, ...], modules: dict[str, str | None], hashes: dict[str, str]) -> list[str]:
    """The judge's corpora the modules also learnt from, by name or by content hash."""
    module_hashes = {h for h in modules.values() if h}
    return sorted(c for c in corpora if c in modules or hashes.get(c) in module_hashes)


def choose_independent(panel: JudgePanel, modules: dict[str, str | None], requested: str = AUTO) -> IndependentJudge:
    """The independent judge of modules that learnt from `modules` (see `module_corpora`)."""
    found = candidates(panel)
    hashes = _hashes(panel)
    clean = [name for name, (corpora, _) in found.items() if not _overlap(corpora, modules, hashes)]
    if requested == AUTO and not modules:  # nothing recorded: only a judge with no corpus is provably independent
        requested = LEXICONS if LEXICONS in found else AUTO
    if requested == AUTO:
        if not clean:
            raise LoraComposeError(
                f"no {panel.attribute} judge shares no corpus with the modules (they learnt from "
                f"{', '.join(sorted(modules)) or 'nothing recorded'}); judges: "
                + "; ".join(f"{n} ({', '.join(c) or 'no corpus'})" for n, (c, _) in found.items()))
        requested = clean[0]
    if requested not in found:
        raise LoraComposeError(f"unknown independent judge '{requested}' for {panel.attribute}; accepted: "
                               f"{AUTO}, {', '.join(found)}")
    corpora, accuracy = found[requested]
    overlap = _overlap(corpora, modules, hashes)
    if overlap:
        raise LoraComposeError(
            f"judge '{requested}' learnt from {', '.join(overlap)}, which the modules under test also learnt from: "
            f"it cannot be the independent judge; judges that share no corpus with them: {', '.join(clean) or 'none'}")
    if requested == PANEL:
        judge = None
    elif requested == LEXICONS:
        judge = LexiconJudge(max_words=panel.provenance.get("settings", {}).get("max_words"))
    else:
        name, _, held_out = requested.partition("-without-")
        judge = panel.held_out_judge(held_out, name)
    return IndependentJudge(requested, judge, tuple(corpora), tuple(sorted(modules)), accuracy)
