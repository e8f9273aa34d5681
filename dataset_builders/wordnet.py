"""WordNet for the concept-coverage analysis, found where the user's tools put it, read with nltk.

Where it is looked for, in order:

1. **nltk's data folders** (``nltk.data.path``, ``$NLTK_DATA``): where ``python -m nltk.downloader wordnet`` puts it.
2. **A WordNet 3.0 database folder** (the ``dict/`` folder of Princeton's release): ``$WNSEARCHDIR``,
   ``$WNHOME/dict``, or where system packages install it (Debian/Ubuntu's ``wordnet-base`` and
   ``wordnet-sense-index``: ``/usr/share/wordnet``).
   nltk reads corpora only from its data folders, and its reader also opens ``lexnames``, which the database packages
   do not install; so the database files are copied once into ``<cache>/nltk_data/corpora/wordnet`` (the package
   cache, ``$TRIPLETCLIP_CACHE`` or ``~/.cache/tripletclip``) with ``lexnames`` written from WordNet's documented
   table of lexicographer files, and that folder is added to nltk's data path.
3. Otherwise :class:`WordNetMissingError`, which says how to get it, online or offline.
"""

from __future__ import annotations

import functools
import os
import shutil
import warnings
from pathlib import Path

from .utils import atomic
from .utils.errors import InputError
from .utils.locations import cache_dir

#: System folders that hold a WordNet 3.0 database when a package manager installed it.
SYSTEM_DATABASES = ("/usr/share/wordnet", "/usr/local/share/wordnet", "/usr/local/WordNet-3.0/dict",
                    "/opt/homebrew/opt/wordnet/dict", "/usr/local/opt/wordnet/dict")
#: The database files nltk's reader opens (``cntlist.rev``, the sense counts, where present).
#: Debian/Ubuntu install ``index.sense`` with a package of its own, ``wordnet-sense-index``.
DATABASE_FILES = tuple(f"{kind}.{pos}" for pos in ("noun", "verb", "adj", "adv") for kind in ("index", "data")) + \
    tuple(f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")) + ("index.sense",)
OPTIONAL_FILES = ("cntlist.rev",)
#: WordNet 3.0's lexicographer files, numbered 00-44 (lexnames(5WN)); the third field is the syntactic category.
LEXICOGRAPHER_FILES = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1), ("noun.animal", 1),
    ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1), ("noun.cognition", 1),
    ("noun.communication", 1), ("noun.event", 1), ("noun.feeling", 1), ("noun.food", 1), ("noun.group", 1),
    ("noun.location", 1), ("noun.motive", 1), ("noun.object", 1), ("noun.person", 1), ("noun.phenomenon", 1),
    ("noun.plant", 1), ("noun.possession", 1), ("noun.process", 1), ("noun.quantity", 1), ("noun.relation", 1),
    ("noun.shape", 1), ("noun.state", 1), ("noun.substance", 1), ("noun.time", 1), ("verb.body", 2),
    ("verb.change", 2), ("verb.cognition", 2), ("verb.communication", 2), ("verb.competition", 2),
    ("verb.consumption", 2), ("verb.contact", 2), ("verb.creation", 2), ("verb.emotion", 2), ("verb.motion", 2),
    ("verb.perception", 2), ("verb.possession", 2), ("verb.social", 2), ("verb.stative", 2), ("verb.weather", 2),
    ("adj.ppl", 3),
)
HOW_TO_GET_IT = (
    "Install it with `python -m nltk.downloader wordnet` (needs the internet), or offline from your system's "
    "packages: `apt-get install wordnet-base wordnet-sense-index` (Debian/Ubuntu), `brew install wordnet` (macOS); or point "
    "WNSEARCHDIR at a WordNet 3.0 `dict/` folder."
)


class WordNetMissingError(InputError):
    """WordNet is neither in nltk's data folders nor installed as a database; the message says how to get it."""


def database_folders() -> list[Path]:
    """The WordNet database folders to look in, in order."""
    folders = [os.environ.get("WNSEARCHDIR")]
    if os.environ.get("WNHOME"):
        folders.append(str(Path(os.environ["WNHOME"]) / "dict"))
    return [Path(folder) for folder in [*folders, *SYSTEM_DATABASES] if folder]


def is_database(folder: Path) -> bool:
    return all((folder / name).is_file() for name in DATABASE_FILES)


def install_into_nltk_data(database: Path, nltk_data: Path) -> Path:
    """Copy a WordNet database folder into ``nltk_data/corpora/wordnet`` (atomically), with ``lexnames``."""
    target = nltk_data / "corpora" / "wordnet"
    if is_database(target) and (target / "lexnames").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(target, folder=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        for name in DATABASE_FILES + OPTIONAL_FILES:
            if (database / name).is_file():
                shutil.copyfile(database / name, tmp / name)
        (tmp / "lexnames").write_text(
            "".join(f"{number:02d}\t{name}\t{category}\n"
                    for number, (name, category) in enumerate(LEXICOGRAPHER_FILES)), encoding="utf-8")
    return target


@functools.lru_cache(maxsize=1)
def load_wordnet():
    """nltk's WordNet reader, from wherever WordNet is (see the module docstring).

    Raises:
        WordNetMissingError: nltk is not installed, or WordNet is nowhere; the message says how to get it.
    """
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError as error:
        raise WordNetMissingError(f"The coverage analysis reads WordNet with nltk, which is not installed "
                                  f"(`pip install nltk`). {HOW_TO_GET_IT}") from error
    own = cache_dir() / "nltk_data"
    if str(own) not in nltk.data.path:
        nltk.data.path.append(str(own))
    try:
        root = nltk.data.find("corpora/wordnet")
    except LookupError:
        database = next((folder for folder in database_folders() if is_database(folder)), None)
        if database is None:
            partial = [folder for folder in database_folders() if (folder / "data.noun").is_file()]
            if partial:
                missing = [name for name in DATABASE_FILES if not (partial[0] / name).is_file()]
                raise WordNetMissingError(
                    f"The WordNet database in {partial[0]} lacks {', '.join(missing)}, which nltk's reader opens"
                    + (" (Debian/Ubuntu: `apt-get install wordnet-sense-index`)." if "index.sense" in missing
                       else ".") + f" {HOW_TO_GET_IT}")
            looked = ", ".join(map(str, [*nltk.data.path, *database_folders()]))
            raise WordNetMissingError(f"WordNet was not found (looked in {looked}). {HOW_TO_GET_IT}") from None
        install_into_nltk_data(database, own)
        root = nltk.data.find("corpora/wordnet")
    with warnings.catch_warnings():  # "multilingual functions are not available": the analysis is English only
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(root, None)


__all__ = ["WordNetMissingError", "install_into_nltk_data", "load_wordnet"]
