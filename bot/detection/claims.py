"""Captured-soldier claim detector.

Works on the tokens and lemmas of :func:`bot.detection.text.analyze`, one
sentence at a time: cues (prisoner-of-war nouns, "взять / сдаться / попасть в
плен", "захопити в полон", "taken prisoner", "captured" + a soldier, ...) are
found first, then the sentence around each cue decides whether it is a
claim, a denial, a prisoner exchange or something that only looks like one
(captured towns and tanks, footage, metaphors, organisations, hypotheticals,
questions, history). The verdicts of all sentences are then combined per text.

Pure: no I/O and no clock at call time; pymorphy3 tags are read through the
morphology module's cached analyzers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from bot.detection import claim_lexicon as lx
from bot.detection import morphology
from bot.detection.text import Analysis, Token

__all__ = ["ClaimResult", "Evidence", "LABELS", "detect_claim"]

LABELS = ("claim", "denial", "exchange", "none")

_CLAUSE_BREAK = frozenset(",;:()—–")
_INFINITIVE = frozenset({"INFN", "infn"})
_FINITE = frozenset({"past", "pres", "futr", "impr", "indc", "Impe", "PRTF", "PRTS", "GRND"})
# "в руках противника", "у ворога в руках", "потрапили до наших рук"
_INTO_HANDS = frozenset({"в", "у", "до"})
_SKIP_TAGS = frozenset({"ADJF", "ADJS", "PRTF", "NPRO", "Apro"})
_PROPER = frozenset({"Geox", "Orgn", "Name", "Surn", "Patr", "Abbr", "UNKN", "Trad"})
# "2-х", "5-ти": a cardinal written with a case ending, unlike "155-й".
_CARDINAL_SUFFIXES = frozenset({"х", "ти", "ми", "ух", "ех", "ох"})


@dataclass(frozen=True, slots=True)
class Evidence:
    """One matched piece of text; ``text == analysis.text[start:end]``."""

    kind: str  # cue | blocker | negation | denial | hedge | exchange | count
    text: str
    start: int
    end: int
    rule: str


@dataclass(frozen=True, slots=True)
class ClaimResult:
    label: str
    claim: bool
    score: float
    count: int | None
    unverified: bool
    evidence: tuple[Evidence, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


NONE = ClaimResult("none", False, 0.0, None, False, ())


@dataclass(slots=True)
class _Cue:
    first: int  # token indexes within the sentence, inclusive
    last: int
    anchor: int  # the verb or noun the context rules look around
    rule: str
    weight: float
    status: str = "claim"  # claim | denial | exchange | blocked
    because: str = ""
    because_at: tuple[int, int] | None = None
    subject: int | None = None  # the captives' word, when apart from the cue ("двое ... сдались")


# --- morphology helpers ----------------------------------------------------------------------


@lru_cache(maxsize=50_000)
def _parses(norm: str, lang: str) -> tuple[tuple[str, frozenset[str], str | None], ...]:
    """(lemma, grammemes, part of speech) of each pymorphy3 parse, most likely first."""
    if lang not in ("ru", "uk"):
        lang = "ru"
    out = []
    for p in morphology.parses(norm, lang):
        out.append((p.normal_form.replace("ё", "е"), frozenset(p.tag.grammemes), p.tag.POS))
    return tuple(out)


def _top_pos(tok: Token, lang: str) -> str | None:
    parses = _parses(tok.norm, lang)
    return parses[0][2] if parses else None


def _grammemes(tok: Token, lang: str, lemmas: frozenset[str] | None = None) -> frozenset[str]:
    """Union of the grammemes of a token's parses (only those with one of ``lemmas``)."""
    acc: set[str] = set()
    for lemma, gram, _pos in _parses(tok.norm, lang):
        if lemmas is None or lemma in lemmas:
            acc |= gram
    return frozenset(acc)


def _has(tok: Token, words: frozenset[str]) -> bool:
    for lemma in tok.lemmas:
        if lemma in words:
            return True
    return False


# --- the sentence view -----------------------------------------------------------------------


class _Sentence:
    __slots__ = ("text", "toks", "lang", "is_en", "question", "lemma_set")

    def __init__(self, text: str, toks: list[Token], lang: str, tail: str) -> None:
        self.text = text
        self.toks = toks
        self.lang = lang
        latin = sum(1 for t in toks if t.norm[:1].isascii() and t.norm[:1].isalpha())
        self.is_en = lang == "en" or latin * 2 > len(toks)
        self.question = "?" in tail
        self.lemma_set = frozenset(lemma for t in toks for lemma in t.lemmas)

    def gap(self, i: int, j: int) -> str:
        """Original text between token i and token j (i < j)."""
        return self.text[self.toks[i].end : self.toks[j].start]

    def broken(self, i: int, j: int) -> bool:
        """Whether a clause boundary (comma, dash, colon...) lies between tokens i and j."""
        if i > j:
            i, j = j, i
        for k in range(i, j):
            gap = self.gap(k, k + 1)
            if any(ch in _CLAUSE_BREAK for ch in gap) or " - " in gap:
                return True
        return False

    def any_in(self, words: frozenset[str]) -> bool:
        return not self.lemma_set.isdisjoint(words)

    def find(self, words: frozenset[str], lo: int, hi: int) -> int | None:
        for k in range(max(lo, 0), min(hi, len(self.toks))):
            if _has(self.toks[k], words):
                return k
        return None

    def is_person(self, k: int) -> bool:
        tok = self.toks[k]
        if self.is_en:
            return _has(tok, lx.PERSONS_EN) or tok.norm in lx.PERSON_NORMS_EN
        if _has(tok, lx.SUBSTANTIVES) and k + 1 < len(self.toks) and not self.broken(k, k + 1):
            # "военной базы", "военнослужащих частей": an adjective before its noun
            nxt = self.toks[k + 1]
            if (
                _top_pos(nxt, self.lang) == "NOUN"
                and not nxt.text.isupper()
                and not _grammemes(nxt, self.lang) & _PROPER
                and not self.is_person(k + 1)
            ):
                return False
        if _has(tok, lx.MILITARY_PERSONS) or _has(tok, lx.NATIONALS) or _has(tok, lx.POW_NOUNS):
            return True
        if _has(tok, lx.UNITS):
            return True
        if _has(tok, lx.COLLECTIVE_NUMERALS):
            return (
                k + 1 >= len(self.toks)
                or self.broken(k, k + 1)
                or _top_pos(self.toks[k + 1], self.lang) not in ("NOUN", "ADJF", "PRTF")
            )
        return _has(tok, lx.GENERIC_PERSONS) and self.any_in(lx.MILITARY_MARKERS)


# --- cue finders -----------------------------------------------------------------------------


def _captivity_cues(s: _Sentence) -> list[_Cue]:
    """ "в плен / в полон" with its verb, "пленить", POW nouns."""
    cues: list[_Cue] = []
    toks = s.toks
    for i, tok in enumerate(toks):
        if _has(tok, lx.CAPTIVITY_NOUNS) and not _has(tok, lx.POW_NOUNS):
            if tok.norm.startswith("пленар"):
                continue
            prep = next(
                (k for k in (i - 1, i - 2, i - 3) if k >= 0 and toks[k].norm in lx.FROM_PREPS), None
            )
            if prep is not None and all(
                _top_pos(toks[k], s.lang) in ("ADJF", "PRTF") for k in range(prep + 1, i)
            ):
                cues.append(
                    _Cue(
                        prep,
                        i,
                        i,
                        "return_from_captivity",
                        0.6,
                        "exchange",
                        "from_captivity",
                        (prep, i),
                    )
                )
                continue
            verb = None
            for k in (i - 1, i + 1, i - 2, i + 2, i - 3, i + 3, i - 4):
                if 0 <= k < len(toks) and _has(toks[k], lx.INTO_CAPTIVITY_VERBS):
                    if not s.broken(min(i, k), max(i, k)):
                        verb = k
                        break
            strong = verb is not None and not _has(
                toks[verb],
                frozenset(
                    {
                        "оказаться",
                        "оказываться",
                        "находиться",
                        "оставаться",
                        "томиться",
                        "удерживать",
                        "держать",
                        "опинитися",
                        "опинятися",
                        "перебувати",
                        "залишатися",
                        "утримувати",
                        "тримати",
                    }
                ),
            )
            person = _nearest_person(s, i)
            if not strong and person is None:
                continue
            if (
                verb is not None
                and _has(toks[verb], lx.CAPTIVITY_NOMINALS)
                and not _has_captives(s, person)
            ):
                continue  # "добровольная сдача в плен карается ...": the act, not an event
            first, last = (i, i) if verb is None else (min(i, verb), max(i, verb))
            if not strong and not s.broken(min(first, person), max(last, person)):
                first, last = min(first, person), max(last, person)
            cue = _Cue(
                first,
                last,
                verb if verb is not None else i,
                "into_captivity" if strong else "in_captivity",
                0.9 if strong else 0.7,
                subject=person,
            )
            if _metaphor_after(s, i):
                cue.status, cue.because = "blocked", "metaphor"
                cue.because_at = (i + 1, min(i + 3, len(toks) - 1))
            cues.append(cue)
        elif _has(tok, lx.HANDS) and any(
            k >= 0 and toks[k].norm in _INTO_HANDS for k in (i - 1, i - 2)
        ):
            holder = next(
                (
                    k
                    for k in (i + 1, i - 1, i - 2, i - 3)
                    if 0 <= k < len(toks) and _has(toks[k], lx.HOLDERS)
                ),
                None,
            )
            person = _nearest_person(s, i)
            if (
                holder is not None
                and person is not None
                and not s.broken(min(i, person), max(i, person))
                and "plur" in _grammemes(tok, s.lang, lx.HANDS)
            ):
                first, last = min(i - 2, holder, person), max(i, holder, person)
                first = first if toks[first].norm in _INTO_HANDS else first + 1
                cues.append(_Cue(first, last, i, "in_hands", 0.7, subject=person))
        elif _has(tok, lx.CAPTURE_SELF_VERBS):
            if (
                _has(tok, lx.CAPTIVITY_NOMINALS)
                and "NOUN" in _grammemes(tok, s.lang)
                and not _has_captives(s, _nearest_person(s, i))
            ):
                continue  # "пленение" with nobody taken is the notion, not a report
            cue = _Cue(i, i, i, "capture_verb", 0.9)
            active = not _grammemes(tok, s.lang, lx.CAPTURE_SELF_VERBS) & {"PRTF", "PRTS", "NOUN"}
            obj = _thing_taken(s, i) if active else None  # "пленён оператор": the captive
            if obj is not None:
                # "полонили серця", "пленила зрителей": charmed, not captured
                cue.status, cue.because, cue.because_at = "blocked", "metaphor", (obj, obj)
            cues.append(cue)
        elif _has(tok, lx.POW_NOUNS):
            # "взяли пленных", "не брати полонених": the verb carries tense, mood and
            # negation, so the context rules look at it rather than at the noun.
            take = next(
                (
                    k
                    for k in (i - 1, i - 2, i + 1, i + 2)
                    if 0 <= k < len(toks)
                    and _has(toks[k], lx.TAKE_VERBS | lx.CAPTURE_VERBS)
                    and not s.broken(min(i, k), max(i, k))
                ),
                None,
            )
            if take is not None:
                cues.append(_Cue(min(i, take), max(i, take), take, "took_prisoners", 0.9))
            else:
                cues.append(_Cue(i, i, i, "pow_noun", 0.85))
    return cues


def _thing_taken(s: _Sentence, i: int) -> int | None:
    """The object noun right after "пленить / полонити" when it is not a soldier."""
    toks = s.toks
    for k in range(i + 1, min(len(toks), i + 4)):
        if s.broken(i, k) or toks[k].is_number or s.is_person(k):
            return None
        if _number_at(s, k)[0] is not None or _has(toks[k], lx.QUANTITY_NOUNS):
            return None
        parses = _parses(toks[k].norm, s.lang)
        pos = parses[0][2] if parses else None
        if pos in ("ADJF", "PRTF", "NPRO") or (parses and "Apro" in parses[0][1]):
            continue
        if pos == "NOUN" and not parses[0][1] & _PROPER:
            return k if any("accs" in g for _, g, p in parses if p == "NOUN") else None
        return None
    return None


def _has_captives(s: _Sentence, person: int | None) -> bool:
    """Whether a sentence names whose captivity a verbal noun is about: a soldier, or a
    side or formation ("участились случаи сдачи в плен" ... "у ВСУ")."""
    return person is not None or s.any_in(lx.MILITARY_MARKERS | lx.MILITARY_GROUPS)


def _nearest_person(s: _Sentence, i: int) -> int | None:
    """The person word nearest to token i: in the same clause first, before it (the
    subject of "сдались") before after it ("сдались бойцам")."""
    best: tuple[int, int] | None = None
    for k in range(len(s.toks)):
        if k != i and s.is_person(k):
            rank = abs(k - i) + (0 if k < i else 8)
            rank += 100 if s.broken(min(i, k), max(i, k)) else 0
            if best is None or rank < best[0]:
                best = (rank, k)
    return None if best is None else best[1]


def _metaphor_after(s: _Sentence, i: int) -> bool:
    """ "в плену иллюзий / у сказки / своего гардероба": captivity of an inanimate thing."""
    toks = s.toks
    k = i + 1
    if k < len(toks) and toks[k].norm == "у" and not s.broken(i, k):
        k += 1
    skipped = 0
    while k < len(toks) and skipped < 2 and not s.broken(i, k):
        pos = _top_pos(toks[k], s.lang)
        if pos == "NOUN":
            break
        if pos in ("ADJF", "PRTF", "NPRO") or "Apro" in _grammemes(toks[k], s.lang):
            k += 1
            skipped += 1
            continue
        return False
    if k >= len(toks) or s.broken(i, k) or toks[k].is_number or s.is_person(k):
        return False
    parses = _parses(toks[k].norm, s.lang)
    if any(pos in ("PREP", "NUMR", "ADVB") for _, _g, pos in parses):
        return False  # "взяли в полон понад сто строковиків", "в плен более 20"
    noun_parses = [g for _, g, _p in parses if "NOUN" in g]
    if not noun_parses:
        return False
    if any("anim" in g or g & _PROPER for g in noun_parses) or _has(toks[k], lx.MILITARY_GROUPS):
        return False
    if toks[k - 1].norm == "у":
        return any("gent" in g for g in noun_parses)
    # Without "у" only an unambiguous genitive: "сдались в плен армии" is a dative.
    return "gent" in noun_parses[0] and not any("datv" in g for g in noun_parses)


def _capture_cues(s: _Sentence) -> list[_Cue]:
    """ "захватили офицера", "захваченные срочники", "взяли живыми", "удерживают бойцов",
    bare "сдались" with a soldier around."""
    cues: list[_Cue] = []
    toks = s.toks
    n = len(toks)
    idioms = s.any_in(lx.SURRENDER_FIRST)
    for i, tok in enumerate(toks):
        if _has(tok, lx.CAPTURE_VERBS) or _has(tok, lx.HOLD_VERBS):
            gram = _grammemes(tok, s.lang, lx.CAPTURE_VERBS | lx.HOLD_VERBS)
            rule = "hold_person" if _has(tok, lx.HOLD_VERBS) else "capture_person"
            if gram & {"PRTF", "PRTS"}:
                for k in range(max(0, i - 4), min(n, i + 5)):
                    if k != i and s.is_person(k) and not s.broken(i, k):
                        if not _patient_of_participle(gram, _grammemes(toks[k], s.lang)):
                            continue  # "захваченная нашими бойцами": the captors
                        cues.append(_Cue(min(i, k), max(i, k), i, rule, 0.8))
                        break
            else:
                in_pp = False
                for k in range(i + 1, min(n, i + 6)):
                    if s.broken(i, k):
                        break
                    if s.is_person(k):
                        if _object_form(s, k):
                            cues.append(
                                _Cue(i, k, i, rule, 0.8 if rule == "capture_person" else 0.7)
                            )
                        break
                    # "захопили опорний пункт окупантів": the object is the strongpoint,
                    # the persons after it only own it. Nouns inside a prepositional
                    # phrase ("захватили под Бахмутом двух бойцов") and quantity nouns
                    # ("группу диверсантов") do not end the search.
                    pos = _top_pos(toks[k], s.lang)
                    if pos == "PREP":
                        in_pp = True
                    elif pos == "NOUN" and not _has(
                        toks[k], lx.QUANTITY_NOUNS | lx.CAPTIVITY_NOUNS
                    ):
                        if not in_pp and "accs" in _grammemes(toks[k], s.lang):
                            break
                        in_pp = False
        elif _has(tok, lx.TAKE_VERBS):
            k = s.find(lx.ALIVE, i + 1, i + 4)
            if k is None:
                k = s.find(lx.ALIVE, i - 2, i)
            if k is not None:
                cues.append(_Cue(min(i, k), max(i, k), i, "taken_alive", 0.85))
        elif _has(tok, lx.SURRENDER_VERBS):
            if s.find(lx.CAPTIVITY_NOUNS, i - 3, i + 4) is not None:
                continue  # handled as "сдаться в плен"
            person = _nearest_person(s, i)
            if person is not None:
                cues.append(_Cue(i, i, i, "surrender", 0.75, subject=person))
        elif idioms:
            cue = _surrender_idiom(s, i, lx.SURRENDER_PAIRS)
            if cue is not None:
                cues.append(cue)
    return cues


def _surrender_idiom(
    s: _Sentence, i: int, pairs: tuple[tuple[frozenset[str], frozenset[str]], ...]
) -> _Cue | None:
    """ "сложили оружие", "підняли білий прапор", "laid down their arms": a surrender when
    a soldier is the one doing it (not "Европа выбросила белый флаг")."""
    toks = s.toks
    for first, second in pairs:
        if not _has(toks[i], first):
            continue
        j = s.find(second, i + 1, i + 4)
        if j is None or s.broken(i, j):
            continue
        if s.is_en:
            person = next((k for k in range(i - 1, max(-1, i - 8), -1) if s.is_person(k)), None)
            if person is None or s.broken(person, i):
                return None
        else:
            person = _nearest_person(s, i)
            if person is None or s.broken(min(i, person), max(i, person)):
                return None
        return _Cue(i, j, i, "surrender", 0.75, subject=person)
    return None


def _object_form(s: _Sentence, k: int) -> bool:
    """Whether a person noun after a verb can be its object: an animate accusative
    ("захватили офицера", "бойцов"), or a genitive after a number."""
    tok = s.toks[k]
    if k and (s.toks[k - 1].is_number or _number_at(s, k - 1)[0] is not None):
        return True
    for _lemma, gram, _pos in _parses(tok.norm, s.lang):
        if "accs" in gram and ("anim" in gram or "NOUN" not in gram):
            return True
    return False


def _patient_of_participle(participle: frozenset[str], noun: frozenset[str]) -> bool:
    """A noun in the instrumental is the captor ("захваченная бойцами") unless the
    participle agrees with it ("с захваченными срочниками")."""
    if "ablt" not in noun or noun & {"nomn", "accs", "gent"}:
        return True
    return "PRTF" in participle and "ablt" in participle


def _english_cues(s: _Sentence) -> list[_Cue]:
    cues: list[_Cue] = []
    toks = s.toks
    n = len(toks)
    idioms = s.any_in(lx.SURRENDER_FIRST_EN)
    for i, tok in enumerate(toks):
        stem = tok.lemmas[0] if tok.lemmas else tok.norm
        if stem == "pow":
            cues.append(_Cue(i, i, i, "pow_noun", 0.85))
        elif stem == "prison":
            if i + 2 < n and toks[i + 1].norm == "of" and toks[i + 2].norm == "war":
                cues.append(_Cue(i, i + 2, i, "pow_noun", 0.85))
                continue
            take = next(
                (k for k in range(i - 1, max(-1, i - 7), -1) if toks[k].norm in lx.TAKE_EN_FORMS),
                None,
            )
            if take is not None and not s.broken(take, i) and _en_held_someone(s, take):
                cues.append(_Cue(take, i, take, "taken_prisoner", 0.9))
            elif i + 1 < n and _has(toks[i + 1], lx.EXCHANGE_WORDS):
                cues.append(
                    _Cue(i, i + 1, i, "prisoner_exchange", 0.5, "exchange", "exchange", (i, i + 1))
                )
        elif stem in lx.CAPTIVITY_EN:
            take = next(
                (k for k in range(i - 1, max(-1, i - 7), -1) if toks[k].norm in lx.TAKE_EN_FORMS),
                None,
            )
            if take is not None and not s.broken(take, i) and _en_held_someone(s, take):
                cues.append(_Cue(take, i, take, "taken_prisoner", 0.85))
            elif (
                i
                and toks[i - 1].norm in ("in", "into", "its", "their", "from")
                or (i > 1 and toks[i - 2].norm == "in")
            ):
                if toks[i - 1].norm == "from":
                    cues.append(
                        _Cue(
                            i - 1,
                            i,
                            i,
                            "return_from_captivity",
                            0.6,
                            "exchange",
                            "from_captivity",
                            (i - 1, i),
                        )
                    )
                else:
                    person = _nearest_person(s, i)
                    if person is not None:
                        first, last = (
                            (i, i)
                            if s.broken(min(i, person), max(i, person))
                            else (min(i, person), max(i, person))
                        )
                        cues.append(_Cue(first, last, i, "in_captivity", 0.65))
        elif stem in lx.CAPTURE_VERBS_EN or stem in lx.HOLD_EN:
            rule = "hold_person" if stem in lx.HOLD_EN else "capture_person"
            patient = _en_patient_after(s, i)
            if patient is None and stem in lx.CAPTURE_VERBS_EN:
                patient = _en_patient_before(s, i)
            if patient is not None:
                cues.append(
                    _Cue(
                        min(i, patient),
                        max(i, patient),
                        i,
                        rule,
                        0.85 if rule == "capture_person" else 0.7,
                    )
                )
        elif stem in lx.SURRENDER_EN:
            for k in range(i - 1, max(-1, i - 7), -1):
                if s.broken(k, i):
                    break
                if s.is_person(k):
                    cues.append(_Cue(k, i, i, "surrender", 0.75))
                    break
        elif idioms:
            cue = _surrender_idiom(s, i, lx.SURRENDER_PAIRS_EN)
            if cue is not None:
                cues.append(cue)
    return cues


def _en_held_someone(s: _Sentence, take: int) -> bool:
    """ "held captive" is a capture only with captives in the sentence, not in
    "politics held captive by fear"; "taken prisoner" always has its subject."""
    if s.toks[take].norm not in lx.HOLD_EN_FORMS:
        return True
    return any(
        t.is_number or t.norm in lx.PRONOUNS_EN or s.is_person(k) for k, t in enumerate(s.toks)
    )


def _en_patient_after(s: _Sentence, i: int) -> int | None:
    toks = s.toks
    for k in range(i + 1, min(len(toks), i + 9)):
        if s.broken(i, k):
            return None
        if s.is_person(k):
            if s.text[toks[k].end : toks[k].end + 1] in ("'", "’"):
                continue  # "the soldiers' despair": a possessive, not the object
            return k
        if toks[k].is_number or toks[k].norm in lx.EN_SKIP:
            continue
        return None
    return None


def _en_patient_before(s: _Sentence, i: int) -> int | None:
    """The subject of a passive ("soldiers were captured") or reduced relative
    ("fighters captured near Bakhmut were...")."""
    toks = s.toks
    n = len(toks)
    passive = False
    for k in range(i - 1, max(-1, i - 4), -1):
        if toks[k].norm in lx.BE_EN:
            passive = True
            break
    nxt = toks[i + 1].norm if i + 1 < n else ""
    if nxt == "by" or i + 1 >= n or s.broken(i, i + 1):
        passive = True
    if (
        not passive
        and i
        and s.is_person(i - 1)
        and nxt
        in (
            "near",
            "in",
            "at",
            "during",
            "on",
            "after",
            "outside",
            "while",
            "alive",
            "yesterday",
            "earlier",
            "last",
            "overnight",
            "today",
        )
    ):
        return i - 1
    if not passive:
        return None
    for k in range(i - 1, max(-1, i - 8), -1):
        if s.broken(k, i):
            return None
        if s.is_person(k):
            return k
    return None


# --- context ---------------------------------------------------------------------------------


def _judge(s: _Sentence, cue: _Cue) -> None:
    """Set the cue's status from the sentence around it."""
    if cue.status != "claim":
        return
    toks = s.toks
    n = len(toks)
    a = cue.anchor

    # A condition or purpose governs everything after it, negations included:
    # "чтобы они не попали в плен" is no denial.
    k = s.find(lx.HYPOTHETICAL, 0, cue.first)
    if k is not None:
        cue.status, cue.because, cue.because_at = "blocked", "hypothetical", (k, k)
        return

    # Denial: negation on the cue, or the sentence says the report is false.
    neg = _negation(s, cue)
    if neg is not None:
        cue.status, cue.because, cue.because_at = "denial", "negated", (neg, neg)
        if cue.rule == "surrender":
            cue.status = "blocked"
        elif not s.is_en and _has_only(toks[a], s.lang, "INFN", "VERB"):
            # "приказ не брать пленных", "не здаватися": an order or a resolve, no report
            cue.status, cue.because = "blocked", "hypothetical"
        return
    k = s.find(lx.DENIAL_WORDS, 0, n)
    if k is not None and not (s.is_en and toks[k].lemmas[0] == "stage" and toks[k].norm == "stage"):
        cue.status, cue.because, cue.because_at = "denial", "denial_word", (k, k)
        return
    for k in range(n):
        if toks[k].norm in ("не", "not"):
            j = s.find(lx.NEGATED_CONFIRM, k + 1, k + 3)
            if j is None:
                j = s.find(lx.MATCH_VERBS, k + 1, k + 2)
                if j is not None:
                    j = s.find(lx.TRUTH_NOUNS, j + 1, j + 4)
            if j is not None:
                cue.status, cue.because, cue.because_at = "denial", "not_true", (k, j)
                return

    # Exchanges and returns home.
    held = cue.rule == "hold_person" or (
        cue.rule == "in_captivity" and _has(toks[a], lx.HOLDING_VERBS)
    )
    k = s.find(lx.EXCHANGE_WORDS, 0, n)
    if k is not None and _exchange_to_come(s, cue, k):
        return  # "взяли в плен ... и готовы обменять их": the capture is the news
    if k is None or held:
        k = s.find(lx.RETURN_WORDS, 0, n) if not held else None
    if k is None and cue.rule in ("pow_noun", "into_captivity"):
        k = s.find(lx.RELEASE_WORDS, cue.first - 2, cue.last + 4)
    if k is not None:
        cue.status, cue.because, cue.because_at = "exchange", "exchange", (k, k)
        return

    blocked = _blocker(s, cue)
    if blocked is not None:
        cue.status, cue.because, cue.because_at = "blocked", blocked[0], blocked[1]


def _exchange_to_come(s: _Sentence, cue: _Cue, k: int) -> bool:
    """An exchange offered for captives just taken ("captured ... and offers to swap
    them", "пополнили обменный фонд"), not one that happened."""
    if cue.rule in ("pow_noun", "in_captivity", "return_from_captivity", "captivity_mention"):
        return False
    toks = s.toks
    if k > cue.last and k + 1 < len(toks) and _has(toks[k + 1], lx.EXCHANGE_FUND):
        return True
    if k < cue.last:
        return False
    return s.find(lx.EXCHANGE_OFFERS, k - 3, k) is not None


def _negation(s: _Sentence, cue: _Cue) -> int | None:
    toks = s.toks
    lo = min(cue.first, cue.anchor) - 3
    if cue.rule == "pow_noun":
        for k in (cue.first - 1, cue.first - 2):
            if k >= 0 and (_has(toks[k], lx.NEGATIVE_DETERMINERS) or toks[k].norm in ("no", "ни")):
                return k
        for k in range(cue.last + 1, min(len(toks), cue.last + 5)):
            if s.broken(cue.last, k):
                break
            if toks[k].norm in ("нет", "немає", "нема"):
                return k
        return None
    for k in range(max(0, lo), cue.last + 1):
        norm = toks[k].norm
        if norm in lx.NEGATIONS or norm.endswith("n't"):
            if k < cue.first and s.broken(k, cue.first):
                continue
            return k
    return None


def _equipment_not_people(s: _Sentence) -> tuple[int, int] | None:
    """A sentence saying what was taken was gear, not people: "не солдаты, а их
    техника", "not soldiers but their equipment", "техника, а не экипаж"."""
    toks = s.toks
    n = len(toks)
    for k, tok in enumerate(toks):
        if tok.norm not in lx.NEGATIONS:
            continue
        person = next((j for j in range(k + 1, min(n, k + 4)) if s.is_person(j)), None)
        if person is not None:
            # не <people>, а <gear>
            turn = s.find(lx.CONTRAST_WORDS, person + 1, person + 4)
            if turn is not None and s.find(lx.EQUIPMENT, turn + 1, turn + 5) is not None:
                return k, person
        if person is not None and k and _has(toks[k - 1], lx.CONTRAST_WORDS):
            # <gear>, а не <people>
            if s.find(lx.EQUIPMENT, k - 6, k - 1) is not None:
                return k - 1, person
    return None


def _blocker(s: _Sentence, cue: _Cue) -> tuple[str, tuple[int, int]] | None:
    toks = s.toks
    n = len(toks)
    a = cue.anchor
    if s.question:
        return "question", (cue.first, cue.last)
    contrast = _equipment_not_people(s)
    if contrast is not None:
        return "equipment_not_people", contrast
    k = s.find(lx.HISTORY_WORDS, 0, n)
    if k is not None:
        return "history", (k, k)
    for k in range(n - 1):
        for x, y in lx.HISTORY_PAIRS:
            if x in toks[k].lemmas and y in toks[k + 1].lemmas:
                return "history", (k, k + 1)
    for k, tok in enumerate(toks):
        if tok.is_number and tok.norm.isdigit():
            value = int(tok.norm)
            nxt = toks[k + 1] if k + 1 < n else None
            prev = toks[k - 1] if k else None
            if 1900 <= value <= 2021 and (
                (nxt is not None and _has(nxt, lx.YEAR_WORDS))
                or (prev is not None and prev.norm in lx.YEAR_PREPS)
            ):
                return "history", (k, k)
    # "год назад", "два года назад", "рік тому", "a year ago": a look back, not news.
    for k in range(n - 1):
        if _has(toks[k], lx.YEAR_WORDS | {"лет", "років"}) and _has(toks[k + 1], lx.AGO_WORDS):
            return "history", (k, k + 1)
    k = s.find(lx.ANNIVERSARY_WORDS, 0, n)
    if k is not None:
        return "history", (k, k)
    k = s.find(lx.HOSTAGE_WORDS, 0, n)
    if k is not None and cue.rule not in ("pow_noun", "into_captivity"):
        return "hostage", (k, k)
    # Hypotheticals: "если / якщо / if", "в случае / у разі", generic "каждый", modals.
    k = s.find(lx.HYPOTHETICAL, 0, cue.last + 1)
    if k is not None:
        return "hypothetical", (k, k)
    k = s.find(lx.HYPOTHETICAL_HEADS, 0, cue.first + 1)
    if k is not None and k and toks[k - 1].norm in ("в", "у", "во", "на"):
        return "hypothetical", (k - 1, k)
    k = s.find(lx.GENERIC_QUANTIFIERS, cue.first - 3, cue.first)
    if k is not None:
        return "hypothetical", (k, k)
    k = s.find(lx.NORMATIVE, 0, n)
    if k is not None and not s.broken(min(k, a), max(k, a)):
        return "hypothetical", (k, k)
    if s.is_en:
        for k in range(max(0, cue.first - 3), min(n, cue.last + 6)):
            if toks[k].norm in lx.FUTURE_EN and not s.broken(min(k, a), max(k, a)):
                if (
                    k < cue.first
                    or not s.gap(cue.last, k).strip(" ")
                    or not any(toks[j].norm == "and" for j in range(cue.last + 1, k))
                ):
                    return "hypothetical", (k, k)
        if cue.rule == "capture_person":
            # "the video captured infiltrators crossing": a recording, not a capture
            k = s.find(lx.RECORDINGS_EN, cue.first - 3, cue.first)
            if k is not None:
                return "footage", (k, cue.first)
    else:
        verb = toks[a]
        gram = _grammemes(
            verb,
            s.lang,
            lx.INTO_CAPTIVITY_VERBS
            | lx.CAPTURE_VERBS
            | lx.CAPTURE_SELF_VERBS
            | lx.SURRENDER_VERBS
            | lx.HOLD_VERBS
            | lx.TAKE_VERBS,
        )
        if (gram & _INFINITIVE or not gram & _FINITE) and _has_only(verb, s.lang, "INFN", "VERB"):
            if s.find(lx.SUCCESS_VERBS, a - 3, a) is None:
                return "hypothetical", (a, a)
        if "futr" in gram and "perf" in gram and _has_only(verb, s.lang, "futr", "VERB"):
            return "hypothetical", (a, a)
        # "Сдавайтесь!", "здавайтеся в полон": an appeal, nobody has yet.
        if "impr" in gram and _has_only(verb, s.lang, "impr", "VERB"):
            return "hypothetical", (a, a)
    # Organisations and category references to POWs.
    if cue.rule == "pow_noun":
        k = s.find(lx.ORGANISATION_HEADS, cue.first - 6, cue.first)
        if k is not None:
            return "organisation", (k, cue.last)
        # "статус зниклих безвісти та військовополонених", "допустить МККК к пленным"
        k = s.find(lx.POLICY_HEADS, cue.first - 5, cue.first)
        if k is not None and not s.broken(k, cue.first):
            return "policy", (k, cue.last)
    return None


def _has_only(tok: Token, lang: str, gram: str, pos: str) -> bool:
    """Whether every parse of the token with part of speech ``pos`` carries ``gram``."""
    parses = [g for _, g, _p in _parses(tok.norm, lang) if pos in g or g & _INFINITIVE]
    if gram == "INFN":
        # pymorphy3's Ukrainian dictionary tags infinitives "infn", or ("здаватися")
        # leaves them with no tense or mood at all.
        return bool(parses) and all(g & _INFINITIVE or not g & _FINITE for g in parses)
    return bool(parses) and all(gram in g for g in parses)


def _hedge(s: _Sentence) -> tuple[int, int] | None:
    toks = s.toks
    for k, tok in enumerate(toks):
        if s.is_en and tok.norm in lx.HEDGE_NORMS_EN:
            return k, k
        if _has(tok, lx.HEDGES):
            if (
                s.is_en
                and tok.lemmas[0] == "claim"
                and k
                and toks[k - 1].norm in ("russian", "ukrainian", "the", "these", "such")
            ):
                continue  # "Russian claims that..." as a noun is reported, not hedged speech
            return k, k
        if tok.norm in lx.HEDGE_PREPS or tok.lemmas[0] in lx.HEDGE_PREPS:
            j = s.find(lx.HEDGE_HEADS, k + 1, k + 3)
            if j is not None:
                return k, j
    return None


def _count(s: _Sentence, cue: _Cue) -> tuple[int, tuple[int, int]] | None:
    """The number of captives nearest the cue, from digits or number words."""
    toks = s.toks
    n = len(toks)
    best: tuple[int, int, tuple[int, int]] | None = None
    k = 0
    while k < n:
        value, end = _number_at(s, k)
        if value is None:
            k += 1
            continue
        if end + 1 < n and _has(toks[end + 1], lx.NOT_PEOPLE_UNITS):
            k = end + 1
            continue
        if end + 2 < n and _has(toks[end + 2], lx.NOT_PEOPLE_UNITS) and not s.is_person(end + 1):
            k = end + 1
            continue
        first, last = cue.first, cue.last
        if cue.subject is not None:
            first, last = min(first, cue.subject), max(last, cue.subject)
        dist = first - end if end < first else k - last if k > last else 0
        if dist <= 6 and not s.broken(min(end, first), max(k, first)) or dist <= 2:
            if best is None or dist < best[0]:
                best = (dist, value, (k, end))
        k = end + 1
    return None if best is None else (best[1], best[2])


def _number_at(s: _Sentence, k: int) -> tuple[int | None, int]:
    toks = s.toks
    tok = toks[k]
    if tok.is_number:
        if not tok.norm.isdigit():
            return None, k
        after = s.text[tok.end : tok.end + 1]
        if after.isalpha():
            return None, k  # "47th", "3rd"
        if after == "-":
            suffix = toks[k + 1].norm if k + 1 < len(toks) else ""
            if suffix not in _CARDINAL_SUFFIXES:
                return None, k  # "155-й бригады": an ordinal
        before = s.text[max(0, tok.start - 1) : tok.start]
        if before in ("№", "#", ":", ".", ","):
            return None, k
        value = int(tok.norm)
        if 1900 <= value <= 2100:
            return None, k
        return value, k
    table = lx.NUMBER_WORDS_EN if s.is_en else lx.NUMBER_WORDS
    key = tok.norm if s.is_en else next((lm for lm in tok.lemmas if lm in table), None)
    if key is None or key not in table:
        return None, k
    total = table[key]
    end = k
    # "двадцать пять", "twenty five"
    while end + 1 < len(toks):
        nxt = toks[end + 1]
        nkey = nxt.norm if s.is_en else next((lm for lm in nxt.lemmas if lm in table), None)
        if nkey is None or nkey not in table or table[nkey] >= total:
            break
        total += table[nkey]
        end += 1
    return total, end


# --- entry point -----------------------------------------------------------------------------


def _is_latin(norm: str) -> bool:
    # Tokens are words or numbers, so a norm starting between "a" and Latin
    # Extended-B is a Latin word.
    return "a" <= norm < "\u0250"


def _stemmed(tok: Token) -> Token:
    """A Latin word keyed by its Snowball stem, which the English lexicon is written
    in (the analysis itself carries English lemmas)."""
    return tok._replace(lemmas=(morphology.stem_en(tok.norm),))


def detect_claim(analysis: Analysis) -> ClaimResult:
    """Whether the analysed text claims that soldiers were captured, with the evidence."""
    tokens = analysis.tokens
    hit: set[int] = set()
    triggers = lx.TRIGGERS
    latin = False
    for tok in tokens:
        if "a" <= tok.norm < "\u0250":  # _is_latin, inlined: this loop sees every token
            latin = True
            if morphology.stem_en(tok.norm) in triggers:
                hit.add(tok.sentence)
            continue
        for lemma in tok.lemmas:
            if lemma in triggers:
                hit.add(tok.sentence)
                break
    if not hit:
        return NONE
    if latin:
        tokens = tuple(_stemmed(t) if _is_latin(t.norm) else t for t in tokens)

    text = analysis.text
    by_sentence: dict[int, list[Token]] = {i: [] for i in hit}
    for tok in tokens:
        bucket = by_sentence.get(tok.sentence)
        if bucket is not None:
            bucket.append(tok)

    evidence: list[Evidence] = []
    statuses: list[_Cue] = []
    best_claim: _Cue | None = None
    count: int | None = None
    unverified = False
    claim_weights: list[float] = []
    for si in sorted(hit):
        toks = by_sentence[si]
        sentence = analysis.sentences[si]
        nxt_start = (
            analysis.sentences[si + 1].start if si + 1 < len(analysis.sentences) else len(text)
        )
        tail = text[toks[-1].end : max(nxt_start, toks[-1].end)]
        s = _Sentence(text, toks, sentence.lang, tail)
        cues = _english_cues(s) if s.is_en else _captivity_cues(s) + _capture_cues(s)
        cues = _dedupe(cues)
        if not cues and s.any_in(lx.DENIAL_WORDS):
            # "reports of mass surrender are disinformation": a denial even without a
            # well-formed claim in it.
            k = next((k for k, t in enumerate(toks) if _has(t, lx.MENTIONS)), None)
            if k is None:
                continue
            cues = [_Cue(k, k, k, "captivity_mention", 0.5)]
            _judge(s, cues[0])
            if cues[0].status != "denial":
                continue
        if not cues:
            continue
        for cue in cues:
            _judge(s, cue)
            statuses.append(cue)
            evidence.append(_span(s, cue.first, cue.last, "cue", cue.rule))
            if cue.because_at is not None:
                kind = {"denial": "denial", "exchange": "exchange"}.get(cue.status, "blocker")
                if cue.because == "negated":
                    kind = "negation"
                evidence.append(_span(s, *cue.because_at, kind, cue.because))
        claims = [c for c in cues if c.status == "claim"]
        if not claims:
            continue
        claim_weights.extend(c.weight for c in claims)
        hedge = _hedge(s)
        if hedge is not None:
            unverified = True
            evidence.append(_span(s, *hedge, "hedge", "hedge"))
        for c in sorted(claims, key=lambda c: -c.weight):
            if best_claim is None or c.weight > best_claim.weight:
                best_claim = c
            if count is None:
                found = _count(s, c)
                if found is not None:
                    count = found[0]
                    evidence.append(_span(s, *found[1], "count", "count"))

    evidence_t = tuple(sorted(set(evidence), key=lambda e: (e.start, e.end, e.kind)))
    has = {c.status for c in statuses}
    if "denial" in has:
        return ClaimResult("denial", False, _low(statuses), None, False, evidence_t)
    if best_claim is not None:
        score = max(claim_weights) + 0.03 * (len(claim_weights) - 1) + (0.04 if count else 0)
        score = round(min(score, 0.99) - (0.05 if unverified else 0.0), 3)
        return ClaimResult("claim", True, score, count, unverified, evidence_t)
    if "exchange" in has:
        return ClaimResult("exchange", False, _low(statuses), None, False, evidence_t)
    return ClaimResult("none", False, _low(statuses), None, False, evidence_t)


def _low(cues: list[_Cue]) -> float:
    """Score of a text without a claim: a fraction of its strongest (overruled) cue."""
    return round(0.3 * max((c.weight for c in cues), default=0.0), 3)


def _dedupe(cues: list[_Cue]) -> list[_Cue]:
    """Drop cues whose span lies inside a stronger one (e.g. "захвачены" in "захвачены в плен")."""
    out: list[_Cue] = []
    for cue in sorted(cues, key=lambda c: (-(c.last - c.first), -c.weight)):
        if any(o.first <= cue.first and cue.last <= o.last for o in out):
            continue
        if any(o.first <= cue.anchor <= o.last and o.status == cue.status for o in out):
            continue
        out.append(cue)
    return sorted(out, key=lambda c: c.first)


def _span(s: _Sentence, i: int, j: int, kind: str, rule: str) -> Evidence:
    start, end = s.toks[i].start, s.toks[j].end
    return Evidence(kind, s.text[start:end], start, end, rule)
