"""The text between the answerer and TTS: what may be read aloud, and when.

Why a splitter: Piper needs whole phrases, but waiting for the whole answer would add the
answer's full generation time to the pause the visitor hears. So the first clause goes to TTS
as soon as it is long enough to sound natural, and every later sentence as soon as it ends.

Why ``speakable``: answers carry links and markdown for the screen ("More information:
https://sos.noaa.gov/...", "**bold**"). Read aloud, a URL is ten seconds of noise; the link is
shown as text instead, and symbols become words ("50%" -> "50 percent").
"""

from __future__ import annotations

import re
import unicodedata

# ---------------------------------------------------------------------------- speakable

_URL = (
    r"(?:https?://|www\.)\S+?"
    r"|\b(?:[a-z0-9-]+\.)+(?:gov|com|org|edu|net|io|int|mil|info|us|uk)\b(?:/\S*?)?"
)
_URL_END = r"(?=[.,;:!?)\]\"'”’]*(?:\s|$))"
_URL_RE = re.compile(f"(?:{_URL}){_URL_END}", re.I)
# A lead-in that only points at the link: "More information: <url>", "see <url>".
_LINK_LEAD = (
    r"(?:\b(?:for\s+)?more\s+info(?:rmation)?\b[^\n]{0,40}?"
    r"|\b(?:learn\s+more|find\s+out\s+more|read\s+more|see|visit|go\s+to|check\s+out)"
    r"(?:\s+(?:it\s+)?(?:at|on|here))?\s*:?\s*"
    r"|\b(?:at|on|from|via|here)\s*:?\s*)"
)
_LINK_TAIL_RE = re.compile(f"{_LINK_LEAD}(?:{_URL}){_URL_END}", re.I)
_MORE_INFO_END_RE = re.compile(r"(?:\bfor\s+)?\bmore\s+info(?:rmation)?\s*:\s*$", re.I | re.M)
_MD_IMAGE_RE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK_RE = re.compile(r"\[([^\]]*)\]\([^)]*\)")
# Link texts that only point at the link ("[More information](url)") vanish with it.
_POINTER_TEXT_RE = re.compile(
    r"\s*(?:(?:for\s+)?more\s+info(?:rmation)?|learn\s+more|read\s+more|here|link|this\s+link"
    r"|source|website|catalog\s+page|dataset\s+page)\s*[.:]?\s*",
    re.I,
)
_MD_CODE_FENCE_RE = re.compile(r"^\s*```.*$", re.M)
_MD_LINE_MARK_RE = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+•]\s+|\d{1,3}[.)]\s+)", re.M)
_MD_RULE_RE = re.compile(r"^\s*(?:[-*_]\s*){3,}$", re.M)
_MD_EMPHASIS_RE = re.compile(r"(?<!\w)(\*\*|__|\*|_|~~)(?=\S)(.+?)(?<=\S)\1(?!\w)")
_HTML_TAG_RE = re.compile(r"</?[a-z][^>]*>", re.I)

_SYMBOLS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"\s*°\s*C\b", " degrees Celsius"),
        (r"\s*°\s*F\b", " degrees Fahrenheit"),
        (r"\s*°", " degrees"),
        (r"\s*%", " percent"),
        (r"\s*‰", " per mille"),
        (r"²", " squared"),
        (r"³", " cubed"),
        (r"\s*&\s*", " and "),
        (r"(?:(?<=\s)|^)~\s*(?=\d)", "about "),
        (r"\s*[≈∼]\s*", " about "),
        (r"\s*~\s*", " "),
        (r"\s*±\s*", " plus or minus "),
        (r"(?<=\d)\s*[x×]\s*(?=\d)", " times "),
        (r"\s*×\s*", " times "),
        (r"\s*=\s*", " equals "),
        (r"\s*(?:>=|≥)\s*", " at least "),
        (r"\s*(?:<=|≤)\s*", " at most "),
        (r"\s*>\s*(?=\d)", " more than "),
        (r"\s*<\s*(?=\d)", " less than "),
        (r"(?<=\d)\s*\+\s*(?=\d)", " plus "),
        (r"(?<=\d)\+", " plus"),
        (r"\s*[→⟶]\s*", " to "),
        (r"\$\s*(\d[\d,.]*)(\s*(?:million|billion|trillion))?", r"\1\2 dollars"),
        (r"#\s*(?=\d)", "number "),
        (r"(?<=\w)\s*@\s*(?=\w)", " at "),
        (r"\b[eE]\.\s?g\.(?:,)?", "for example,"),
        (r"\b[iI]\.\s?e\.(?:,)?", "that is,"),
        (r"(?<=\d)\s*km/h\b", " kilometers per hour"),
        (r"(?<=\d)\s*([A-Za-z]{1,3})/([A-Za-z]{1,4})\b", r" \1 per \2"),  # 5 mm/yr
        (r"(?<=[A-Za-z])/(?=[A-Za-z])", " or "),
        (r"\s*/\s*", " "),
        (r"\s+[-–—]{1,2}\s+|[—–]", ", "),
        (r"[|*_#`<>{}\[\]\\^]", " "),
    )
)
_SPACE_BEFORE_PUNCT_RE = re.compile(r"\s+([.,;:!?])")
_REPEATED_PUNCT_RE = re.compile(r"([,;:])(?:\s*[,;:])+|[,;:]\s*([.!?])")
_EMPTY_PARENS_RE = re.compile(r"\(\s*[,;:.]?\s*\)")
_LEADING_PUNCT_RE = re.compile(r"^[\s,;:.!?)]+")
_LINE_END_RE = re.compile(r"(?<=[\w)\"'”’])[ \t]*\n")


def _drop_symbols_and_emoji(text: str) -> str:
    """Emoji and pictographs are not words; keep letters, digits and punctuation."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("So", "Sk", "Cs", "Co", "Cn", "Cf") or ch == "\ufe0f":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _link_text(match: re.Match[str]) -> str:
    text = match.group(1)
    if _POINTER_TEXT_RE.fullmatch(text) or _URL_RE.fullmatch(text.strip()):
        return ""
    return text


def speakable(text: str) -> str:
    """What TTS may read aloud: no links, markdown or emoji; symbols as words; one line.

    Returns "" when nothing speakable is left (a chunk that was only a URL).
    """
    text = _MD_CODE_FENCE_RE.sub("", text)
    text = _MD_IMAGE_RE.sub("", text)
    text = _MD_LINK_RE.sub(_link_text, text)
    text = _LINK_TAIL_RE.sub("", text)
    text = _URL_RE.sub("", text)
    text = _MORE_INFO_END_RE.sub("", text)
    text = _HTML_TAG_RE.sub(" ", text)
    text = _MD_RULE_RE.sub("", text)
    text = _MD_LINE_MARK_RE.sub("", text)
    text = _MD_EMPHASIS_RE.sub(r"\2", text)
    text = text.replace("`", "")
    # A line without an end mark (a heading, a list item) still ends a phrase when spoken.
    text = _LINE_END_RE.sub(". ", text)
    for pattern, repl in _SYMBOLS:
        text = pattern.sub(repl, text)
    text = unicodedata.normalize("NFKC", _drop_symbols_and_emoji(text))
    text = " ".join(text.split())
    text = _EMPTY_PARENS_RE.sub("", text)
    text = _SPACE_BEFORE_PUNCT_RE.sub(r"\1", text)
    text = _REPEATED_PUNCT_RE.sub(lambda m: m.group(2) or m.group(1)[0], text)
    text = _LEADING_PUNCT_RE.sub("", text)
    text = " ".join(text.split())
    return text if re.search(r"\w", text) else ""


# ---------------------------------------------------------------------- SentenceSplitter

# Words whose trailing period does not end a sentence, whatever follows ("Mt. Everest").
_ABBREVIATIONS = frozenset(
    (
        *("mr", "mrs", "ms", "dr", "prof", "st", "mt", "ft", "jr", "sr", "sen", "rep", "gen"),
        *("gov", "lt", "col", "capt", "sgt", "vs", "approx", "ca", "cf", "dept", "inc", "ltd"),
        *("corp", "jan", "feb", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
        *("tue", "thu", "fri", "e.g", "i.e", "u.s", "u.k", "u.n", "a.m", "p.m"),
    )
)
# Abbreviations only before a number ("No. 5", "Fig. 2"); "No." alone is an answer.
_NUMBER_ABBREVIATIONS = frozenset(("no", "nos", "fig", "figs", "eq", "vol", "p", "pp"))
_CLOSERS = r"[\"'”’)\]]"
_SENTENCE_END_RE = re.compile(rf"[.!?…]+{_CLOSERS}*(?=\s)|\n")
_CLAUSE_END_RE = re.compile(rf"[,;:]{_CLOSERS}*(?=\s)|[—–]|\s-\s")
_WORD_BEFORE_RE = re.compile(r"([A-Za-z][A-Za-z.]*)\.+$")


class SentenceSplitter:
    """Streams text deltas into speakable chunks: the first chunk is released at the first clause
    boundary (, ; : —) once it has >= first_chunk_min_chars characters, later ones at sentence
    ends (. ! ? and newlines), so TTS starts before the answer is finished.

    A period ends a sentence only when whitespace and a capital (or digit, or quote) follow, so
    decimals (3.5), URLs (sos.noaa.gov/...), "e.g. a", "U.S. waters" and "approx. three" stay
    whole; the splitter waits for that next character before deciding. "!" and "?" followed by
    whitespace end a sentence at once. A sentence longer than ``max_chunk_chars`` with no
    boundary is cut at a clause boundary or else a word boundary, never inside a word or URL.
    """

    def __init__(self, first_chunk_min_chars: int = 24, max_chunk_chars: int = 240) -> None:
        if first_chunk_min_chars < 1 or max_chunk_chars < first_chunk_min_chars:
            raise ValueError("need 1 <= first_chunk_min_chars <= max_chunk_chars")
        self._first_min = first_chunk_min_chars
        self._max = max_chunk_chars
        self._buf = ""
        self._first = True

    def feed(self, delta: str) -> list[str]:
        """Add the next piece of the answer; return the chunks that are now complete."""
        self._buf += delta
        out: list[str] = []
        while (cut := self._next_cut()) is not None:
            chunk, self._buf = self._buf[:cut].strip(), self._buf[cut:]
            if chunk:
                out.append(chunk)
                self._first = False
        return out

    def flush(self) -> list[str]:
        """The end of the answer: whatever is left, as chunks (long text still cut)."""
        out: list[str] = []
        while len(self._buf.strip()) > self._max and (cut := self._long_cut()) is not None:
            chunk, self._buf = self._buf[:cut].strip(), self._buf[cut:]
            if chunk:
                out.append(chunk)
        rest, self._buf = self._buf.strip(), ""
        if rest:
            out.append(rest)
        self._first = True
        return out

    # ------------------------------------------------------------------ decisions
    def _next_cut(self) -> int | None:
        buf = self._buf
        end = next(
            (
                m.end()
                for m in _SENTENCE_END_RE.finditer(buf)
                if self._is_sentence_end(buf, m.start(), m.end())
            ),
            None,
        )
        if self._first:
            clause = self._first_clause_cut(len(buf) if end is None else end)
            if clause is not None:
                return clause
        if end is not None and len(buf[:end].strip()) <= self._max:
            return end
        if len(buf.strip()) > self._max:
            return self._long_cut()
        return None

    def _first_clause_cut(self, limit: int) -> int | None:
        for m in _CLAUSE_END_RE.finditer(self._buf, 0, limit):
            if len(self._buf[: m.end()].strip()) >= self._first_min:
                return m.end()
        return None

    def _long_cut(self) -> int | None:
        """Where to cut a run with no sentence end: the last clause boundary in the first
        ``max`` characters if it leaves a chunk of a third of that, else the last space."""
        head = self._buf[: self._max + 1]
        clauses = [m.end() for m in _CLAUSE_END_RE.finditer(head) if m.end() >= self._max // 3]
        if clauses:
            return clauses[-1]
        space = head.rstrip().rfind(" ")
        return space if space > 0 else None

    def _is_sentence_end(self, buf: str, start: int, end: int) -> bool:
        mark = buf[start:end]
        if mark == "\n":
            return True
        if "!" in mark or "?" in mark:
            return True
        rest = buf[end:].lstrip()
        if not rest:
            return False  # wait for the next word to decide
        nxt = rest[0]
        if nxt.islower() or nxt in ",;:":
            return False
        match = _WORD_BEFORE_RE.search(buf[:start] + ".")
        word = match.group(1).lower().rstrip(".") if match else ""
        if word in _ABBREVIATIONS or (word in _NUMBER_ABBREVIATIONS and nxt.isdigit()):
            return False
        if re.fullmatch(r"(?:[a-z]\.)*[a-z]", word) and len(word) <= 3 and word not in ("a", "i"):
            return False  # an initial: "J. Smith", "U.S."
        sentence = buf[:start].strip()
        return not sentence.split("\n")[-1].strip().isdigit()  # "1. " starts a list item
