"""Words -> index terms, the one analyzer the catalog's search, grounding and matching share.

Visitors do not use the catalog's vocabulary ("acidic" vs "acidification", "typhoon" vs
"tropical cyclones"), and a Porter stemmer joins words they keep apart ("universe" and
"university"). So this is a conservative suffix stripper, a small hand-made morphology table
and query-side synonyms, all measured on the SOS Q&A sets in ``bench/retrieval.py``. Stop words
include what every question to an exhibit says ("show me", "dataset", "sphere"). Accents are
folded first: Whisper writes "El Niño" where the catalog writes "El Nino".
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_WORD_RE = re.compile(r"[a-z0-9]+")
_POSSESSIVE_RE = re.compile(r"(?<=[a-z])'s\b")

# Function words plus the words every question to an exhibit carries ("show me", "dataset",
# "sphere"): they say nothing about *which* dataset, and leaving them in would give nonsense
# questions spurious matches.
_STOPWORDS_TEXT = """
    a about above after again all also am an and any are as at be because been before being
    between both but by can could did do does doing down during each few for from further get
    got getting had has have having he her here hers him his how i if in into is it its itself just
    know let like ll me mean means more most my no nor not now of off on once only or other
    our out over own please re s same she should so some such t tell than that the their them
    then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours ve d m o y thing
    things something anything kind sort show shows showing shown see seeing look looking
    looks dataset datasets data set animation animations video movie film sphere globe
    picture image images map maps happen happens happening going go goes learn explain
    anyone give gives make makes made say said talk talking info information question
    everything else stuff hi hello hey okay ok yes wow cool really much many lot lots
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

# Stem -> canonical stem: word families a suffix stripper cannot join, or joins wrongly.
_MORPHOLOGY: dict[str, tuple[str, ...]] = {
    "acid": ("acidic", "acidity", "acidify", "acidif", "acidification", "acidifi"),
    "volcano": ("volcanoe", "volcanic", "volcanism"),
    "earthquake": ("quake", "seismic", "earthquak"),
    "hurricane": ("hurrican", "typhoon", "cyclone", "cyclon"),
    "tornado": ("tornadoe", "twister"),
    "glacier": ("glacial", "glaciation"),
    "moon": ("lunar",),
    "fire": ("wildfire", "wildfir"),
    "magnet": ("magnetic", "magnetism", "geomagnetic"),
    "airplan": ("airplane", "plane", "aircraft", "flight", "aviation"),
    "trash": ("garbage", "debri", "debris", "litter"),
    "dinosaur": ("dino",),
    # "-is" keeps its s in the stemmer (analysis, basis), so the plural is mapped here.
    "tsunami": ("tsunamis",),
    "saliniti": ("salti", "salty", "saline", "salin"),
}
MORPHOLOGY: dict[str, str] = {v: k for k, vs in _MORPHOLOGY.items() for v in vs}

# Visitor phrase -> catalog vocabulary. Expansions are added to the query at a lower weight,
# so they help when the catalog never uses the visitor's words and cannot outvote the words
# the visitor did say. Keys and values are raw phrases, normalized with the same analyzer.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "hurricane": ("tropical cyclones", "tropical storm"),
    "global warming": ("climate change", "temperature change"),
    "climate change": ("global warming",),
    "getting warmer": ("global warming", "temperature change"),
    "co2": ("carbon dioxide",),
    "carbon dioxide": ("co2",),
    "greenhouse gas": ("carbon dioxide", "emissions", "greenhouse effect"),
    "northern lights": ("aurora",),
    "southern lights": ("aurora",),
    "tidal wave": ("tsunami",),
    "big wave": ("tsunami",),
    "killer wave": ("tsunami",),
    "tectonic plates": ("plate tectonics",),
    "continental drift": ("plate tectonics",),
    "ice melting": ("sea ice", "ice sheet", "glacier"),
    "melting ice": ("sea ice", "ice sheet", "glacier"),
    "trash": ("marine debris", "garbage patch"),
    "sea level": ("sea level rise",),
    "ozone hole": ("ozone",),
    "night lights": ("earth at night", "city lights"),
    "lights at night": ("earth at night", "city lights"),
    "storm": ("severe weather",),
    "weather forecast": ("weather model", "forecast"),
    "animal": ("migration", "tracks", "species"),
    "airplan": ("air traffic",),
    "ship": ("shipping",),
    "dinosaur": ("asteroid impact", "extinction", "paleo"),
    "space": ("astronomy",),
    "star": ("stars", "astronomy"),
    "mountain": ("topography", "elevation"),
    "ocean floor": ("seafloor", "bathymetry"),
    "sea floor": ("seafloor", "bathymetry"),
    "bottom of the ocean": ("seafloor", "bathymetry"),
    "deep ocean": ("bathymetry", "seafloor"),
    "water cycle": ("precipitation", "evaporation"),
    "el nino": ("enso",),
    "hot": ("temperature",),
    "cold": ("temperature",),
    "warm": ("temperature",),
    "la nina": ("enso",),
}
SYNONYM_WEIGHT = 0.5


def _light_stem(word: str) -> str:
    """A conservative suffix stripper: plurals, -ing, -ed, final -e.

    Porter-style stemmers conflate words visitors keep apart ("universe"/"university",
    "organ"/"organization"); this one only joins inflections, and the morphology table joins
    the derivations that matter for the catalog.
    """
    w = word
    if len(w) <= 3 or w.isdigit():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is", "ys")):
        w = w[:-1]
    if w.endswith("ing") and len(w) > 5:
        w = w[:-3]
        if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
            w = w[:-1]
    elif w.endswith("ed") and len(w) > 4:
        w = w[:-2]
        if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
            w = w[:-1]
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]
    if w.endswith("y") and len(w) > 4:
        w = w[:-1] + "i"
    return w


def normalize_term(word: str) -> str:
    """One word -> the index term it is stored under (stemmed, then morphology-mapped)."""
    stem = _light_stem(word)
    return MORPHOLOGY.get(word) or MORPHOLOGY.get(stem) or stem


def fold(text: str) -> str:
    """Lower case without accents ("Niño" -> "nino"), curly apostrophes made straight."""
    text = unicodedata.normalize("NFKD", text.lower().replace("\u2019", "'"))
    return "".join(c for c in text if not unicodedata.combining(c))


def analyze(text: str, *, keep_stopwords: bool = False) -> list[str]:
    """Text -> index terms, in order. Possessive 's is dropped ("Saturn's" -> "saturn")."""
    text = _POSSESSIVE_RE.sub("", fold(text))
    words = _WORD_RE.findall(text)
    if keep_stopwords:
        return [normalize_term(w) for w in words]
    terms = (normalize_term(w) for w in words if w not in STOPWORDS)
    return [t for t in terms if t not in STOPWORDS]


def _phrase_terms(phrase: str) -> tuple[str, ...]:
    return tuple(analyze(phrase, keep_stopwords=True))


SYNONYMS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = tuple(
    (_phrase_terms(k), tuple(t for v in vs for t in analyze(v))) for k, vs in _SYNONYMS.items()
)


def query_terms(query: str) -> Counter[str]:
    """Weighted query terms: the visitor's own words at 1, synonym expansions at 0.5."""
    weights: Counter[str] = Counter()
    for term in analyze(query):
        weights[term] = 1.0
    all_terms = analyze(query, keep_stopwords=True)
    for phrase, expansion in SYNONYMS:
        n = len(phrase)
        if any(tuple(all_terms[i : i + n]) == phrase for i in range(len(all_terms) - n + 1)):
            for term in expansion:
                weights[term] = max(weights[term], SYNONYM_WEIGHT)
    return weights
