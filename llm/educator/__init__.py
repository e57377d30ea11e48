"""Educator modes on top of any answerer: classroom activity, spoken quiz, related datasets.

SOS Explorer users click a dataset and get a summary, a classroom activity or a quiz; at the
sphere the same requests come by voice: "describe a classroom activity using this dataset",
"how could I use it in a middle-school class", "quiz me on this", "what else is like this?".
:class:`EducatorAnswerer` (:mod:`llm.educator.answerer`) wraps the process's answerer (catalog,
local model or OpenAI-compatible) and takes these requests itself where it can do them right:

- **Quiz**: always here, from the catalog entry, because a visitor's answer must be checked
  against a known right answer, not a model's guess. Stateless: the quiz's state is re-derived
  from the assistant's last message each turn (:mod:`catalog.quiz_bank` builds the questions,
  :mod:`llm.quiz` reads the state back, :mod:`llm.educator.quiz_flow` says the turns).
- **What else is like this?**: always here: the catalog's own related datasets (then close
  neighbours by topic), spoken as titles, with their pages as "More information" lines of text
  (silent for TTS, shown on screen) and the first suggestion as the answer's link
  (:mod:`llm.educator.related`).
- **Classroom activity**: built here from the catalog entry when the inner answerer is not
  ``generative`` (the catalog one); a language model gets the request with a mode hint in its
  instructions instead, so the SOS model writes the activity from the same grounding
  (:mod:`llm.educator.activities`).

Everything else goes to the inner answerer unchanged. The audience (kids / general /
educator) sets length and vocabulary here too: kids get shorter, simpler activities and quiz
talk; educators get the curriculum angle (grade band, NGSS disciplinary core ideas).
"""

from llm.educator.answerer import EducatorAnswerer

__all__ = ["EducatorAnswerer"]
