"""Where input cases come from: one :class:`CaseSource` abstraction, one module per source."""

from x2ct.sources.base import CaseRef, CaseSource, FolderSource, safe_case_id
from x2ct.sources.ctspine1k import CTSpine1KSource, parse_ctspine1k_split
from x2ct.sources.pairs import PairsSource
from x2ct.sources.phantom import PhantomSource
from x2ct.sources.verse import VerseSource, verse_split_from_folder

__all__ = [
    "CTSpine1KSource",
    "CaseRef",
    "CaseSource",
    "FolderSource",
    "PairsSource",
    "PhantomSource",
    "VerseSource",
    "parse_ctspine1k_split",
    "safe_case_id",
    "verse_split_from_folder",
]
