"""Exercises that check themselves: ``teach.check("02-depth", answer)``.

Each checker works the right answer out from the same data the notebook uses (never a
stored number), and answers with feedback that points the way without giving the answer
away. The worked answers live in the notebooks, folded away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Feedback:
    """What a check says: right or not, and a sentence for the learner."""

    ok: bool
    message: str

    def __str__(self) -> str:
        return ("✔ " if self.ok else "✘ ") + self.message

    def _repr_markdown_(self) -> str:
        return f"**{'Right' if self.ok else 'Not yet'}.** {self.message}"


def _number(answer, what: str) -> float:
    try:
        return float(answer)
    except (TypeError, ValueError):
        raise ValueError(f"answer with a number ({what}), not {answer!r}") from None


def _depth(answer, **_given) -> Feedback:
    from . import toy
    t = toy.make_toy()
    need = toy.depth_needed(t, toy.border_query(t))
    depth = int(_number(answer, "a search depth"))
    if depth < need:
        return Feedback(False, "At that depth the star's region is not scanned yet. Draw it: which regions are shaded?")
    if depth > need:
        return Feedback(False, "That depth finds the star, but so does a smaller one. What is the least that works?")
    return Feedback(True, f"Depth {depth} is the least that reaches across the border to the star.")


def _similarity(answer, distance: float | None = None, **_given) -> Feedback:
    if distance is None:
        raise ValueError("give the distance too: check('02-similarity', answer, distance=d)")
    truth = 1 - float(distance) / 2
    got = _number(answer, "a similarity")
    if abs(got - truth) <= 5e-3:
        return Feedback(True, "Unit vectors: squared distance and cosine similarity carry the same information.")
    if abs(got - float(distance)) <= 5e-3:
        return Feedback(False, "That is the distance itself. Similarity goes the other way: 1 means identical.")
    return Feedback(False, "Not quite. For unit vectors, squared distance = 2 - 2 x similarity; solve for similarity.")


def _recall(answer, sweep=None, target: float = 0.9, **_given) -> Feedback:
    if sweep is None:
        raise ValueError("give the sweep too: check('02-recall', answer, sweep=sweep)")
    reached = sweep[sweep["recall"] >= target]
    got = int(_number(answer, "an nprobe"))
    if not len(reached):
        return Feedback(got == 0, "No depth in the sweep reaches that recall here: answer 0." if got != 0
                        else "Right: none of the depths tried reaches it on this atlas.")
    truth = int(reached["nprobe"].min())
    if got == truth:
        return Feedback(True, f"From nprobe {truth} on, at least {target:.0%} of the true neighbours come back.")
    if got in set(sweep["nprobe"]) and got > truth:
        return Feedback(False, "That depth reaches it, but a smaller one in the table does too.")
    return Feedback(False, "Read the recall column from the top: where does it first reach the target?")


def _reuse(answer, **_given) -> Feedback:
    got = int(_number(answer, "a count of encodings"))
    if got == 0:
        return Feedback(True, "The embedding is kept: changing Top N, depth or scope searches again without the model.")
    return Feedback(False, "Look at session.encodes before and after: does changing Top N run the model again?")


def _index_choice(answer, table=None, **_given) -> Feedback:
    if table is None:
        raise ValueError("give your table too: check('05-choice', answer, table=results)")
    names = [str(n) for n in table["index"]]
    got = str(answer).strip()
    if got not in names:
        return Feedback(False, f"Answer with one of the index names in your table: {', '.join(names)}.")
    smallest = str(table.sort_values("bytes per vector").iloc[0]["index"])
    if got == smallest:
        return Feedback(True, "Only compressed codes fit 234M vectors in memory: 16 bytes each is 3.7 GB, "
                              "raw float32 would be 720 GB.")
    return Feedback(False, "Multiply its bytes per vector by 234 million: would that fit in a laptop's memory?")


def _main_source(answer, hits=None, **_given) -> Feedback:
    if hits is None:
        raise ValueError("give the hits too: check('01-source', answer, hits=hits)")
    counts = hits["source_dataset"].fillna("unknown").str.lower().value_counts()
    got = str(answer).strip().lower()
    if got == counts.index[0]:
        return Feedback(True, f"{counts.iloc[0]} of {len(hits)} results come from it.")
    if got in counts.index:
        return Feedback(False, "Some results come from it, but not the most. Count the source_dataset column.")
    return Feedback(False, f"Answer with a value of the source_dataset column ({', '.join(counts.index)}).")


def _share(answer, counts=None, scope: str = "inat", **_given) -> Feedback:
    if counts is None:
        raise ValueError("give the scope counts too: check('01-share', answer, counts=atlas.scope_counts())")
    truth = counts[scope] / counts["all"]
    got = _number(answer, "a share between 0 and 1")
    got = got / 100 if got > 1 else got
    if abs(got - truth) <= 0.01:
        return Feedback(True, f"About {truth:.0%} of the atlas: a search in that scope can only find those.")
    return Feedback(False, "Divide the scope's count by the count of all records.")


def _best_photo(answer, table=None, **_given) -> Feedback:
    if table is None:
        raise ValueError("give the table too: check('04-best', answer, table=table)")
    truth = str(table.loc[table["top_similarity"].idxmax(), "file"])
    if str(answer).strip() == truth:
        return Feedback(True, "Its best match is the closest of all; closest is not the same as right, though.")
    if str(answer).strip() in set(table["file"]):
        return Feedback(False, "Another photo has a higher top_similarity. Sort the table by it.")
    return Feedback(False, "Answer with a file name from the table.")


def _lowest_recall(answer, table=None, **_given) -> Feedback:
    if table is None:
        raise ValueError("give your table too: check('05-recall', answer, table=results)")
    truth = str(table.sort_values("recall@10").iloc[0]["index"])
    if str(answer).strip() == truth:
        return Feedback(True, "Compression blurs distances between close neighbours: the price of fitting in memory.")
    return Feedback(False, "Read the recall@10 column: which index returns the fewest true neighbours?")


def _count(given: str, what: str, truth: Callable, right: str, hint: str) -> Callable[..., Feedback]:
    """A checker for a whole-number answer worked out from ``given`` (what the notebook passes)."""
    def checker(answer, **kwargs) -> Feedback:
        data = kwargs.get(given)
        if data is None:
            raise ValueError(f"give the {given} too: check(exercise, answer, {given}=...)")
        got = int(_number(answer, what))
        return Feedback(True, right) if got == int(truth(data)) else Feedback(False, hint)
    return checker


_skipped = _count("result", "a number of files", lambda r: r.skipped,
                  "build-report.csv in the atlas names each file that was skipped, and why.",
                  "Look at the build result, or at build-report.csv inside the atlas.")
_families = _count("atlas", "a number of families", lambda a: a.lookup(range(a.count))["family"].nunique(),
                   "The folder names became the taxonomy, and the atlas can count by it.",
                   "Count distinct values of the family column over every record (atlas.lookup).")
_agree = _count("table", "a number of photos", lambda t: (t["top_hit"] == t["consensus"]).sum(),
                "Where the top hit and the majority differ, look at the photo before trusting either.",
                "Compare the top_hit and consensus columns row by row, and count the rows where they match.")
_all_inat = _count("hits", "a number of results", lambda h: h["publisher"].fillna("").str.contains("iNaturalist").sum(),
                   "A scope is a filter, not a preference: every result on the page is inside it.",
                   "Count the results whose publisher is iNaturalist.")

#: Every exercise: its question and its checker, by lesson.
EXERCISES: dict[str, tuple[str, Callable[..., Feedback]]] = {
    "00-inat": ("How many results come from iNaturalist once the scope is iNaturalist", _all_inat),
    "00-reuse": ("How many times the model ran when Top N changed", _reuse),
    "01-share": ("The share of the atlas in the iNaturalist scope", _share),
    "01-source": ("The dataset most of the results come from", _main_source),
    "02-depth": ("The least search depth at which the border query finds its true best match", _depth),
    "02-recall": ("The least nprobe whose recall@10 reaches 90% in the sweep", _recall),
    "02-similarity": ("The cosine similarity of a hit, from its squared distance", _similarity),
    "03-families": ("How many families the new atlas holds", _families),
    "03-skipped": ("How many files the build could not use", _skipped),
    "04-agree": ("For how many photos the top hit and the neighbours' consensus name the same species", _agree),
    "04-best": ("The photo whose best match is the most similar", _best_photo),
    "05-choice": ("The index that could hold 234 million vectors in memory", _index_choice),
    "05-recall": ("The index with the lowest recall@10", _lowest_recall),
}


def check(exercise: str, answer, **given) -> Feedback:
    """Check an answer to an exercise (``given``: what the exercise is about, e.g. ``distance=0.3``)."""
    if exercise not in EXERCISES:
        raise KeyError(f"no exercise {exercise!r}; there are {', '.join(EXERCISES)}")
    return EXERCISES[exercise][1](answer, **given)
