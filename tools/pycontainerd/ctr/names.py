"""Container ids (64 hex, shown 12) and docker's random `adjective_surname` names (moby's
pkg/namesgenerator; a subset of its lists)."""

from __future__ import annotations

import os

LEFT = [
    "admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome", "beautiful", "blissful",
    "bold", "boring", "brave", "busy", "charming", "clever", "cool", "compassionate", "competent", "condescending",
    "confident", "cranky", "crazy", "dazzling", "determined", "distracted", "dreamy", "eager", "ecstatic",
    "elastic", "elated", "elegant", "eloquent", "epic", "exciting", "fervent", "festive", "flamboyant", "focused",
    "friendly", "frosty", "funny", "gallant", "gifted", "goofy", "gracious", "great", "happy", "hardcore",
    "heuristic", "hopeful", "hungry", "infallible", "inspiring", "intelligent", "interesting", "jolly", "jovial",
    "keen", "kind", "laughing", "loving", "lucid", "magical", "mystifying", "modest", "musing", "naughty",
    "nervous", "nice", "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pedantic", "pensive",
    "practical", "priceless", "quirky", "quizzical", "recursing", "relaxed", "reverent", "romantic", "sad",
    "serene", "sharp", "silly", "sleepy", "stoic", "strange", "stupefied", "suspicious", "sweet", "tender",
    "thirsty", "trusting", "unruffled", "upbeat", "vibrant", "vigilant", "vigorous", "wizardly", "wonderful",
    "xenodochial", "youthful", "zealous", "zen",
]

RIGHT = [
    "agnesi", "albattani", "allen", "almeida", "archimedes", "ardinghelli", "aryabhata", "austin", "babbage",
    "banach", "bardeen", "bartik", "bassi", "bell", "benz", "bhabha", "blackwell", "bohr", "booth", "borg",
    "bose", "boyd", "brahmagupta", "brattain", "brown", "carson", "cerf", "chandrasekhar", "chatelet",
    "chaum", "cori", "cray", "curie", "darwin", "davinci", "diffie", "dijkstra", "dirac", "driscoll",
    "dubinsky", "easley", "edison", "einstein", "elgamal", "elion", "engelbart", "euclid", "euler", "faraday",
    "feistel", "fermat", "fermi", "feynman", "franklin", "galileo", "gates", "goldberg", "goldstine",
    "goldwasser", "goodall", "gould", "greider", "hamilton", "haslett", "hawking", "heisenberg", "hellman",
    "hermann", "herschel", "hertz", "hodgkin", "hoover", "hopper", "hugle", "hypatia", "jackson", "jang",
    "jennings", "jepsen", "johnson", "joliot", "jones", "kalam", "kapitsa", "kare", "keldysh", "keller",
    "kepler", "khorana", "kilby", "kirch", "knuth", "kowalevski", "lalande", "lamarr", "lamport", "leakey",
    "leavitt", "lederberg", "lehmann", "lewin", "lichterman", "liskov", "lovelace", "lumiere", "mahavira",
    "margulis", "matsumoto", "maxwell", "mayer", "mccarthy", "mcclintock", "meitner", "mendel", "merkle",
    "minsky", "mirzakhani", "montalcini", "moore", "morse", "napier", "nash", "neumann", "newton", "nobel",
    "noether", "northcutt", "noyce", "pare", "pascal", "pasteur", "payne", "perlman", "pike", "poincare",
    "poitras", "ptolemy", "raman", "ramanujan", "ride", "ritchie", "robinson", "roentgen", "rosalind",
    "rubin", "saha", "sammet", "sanderson", "satoshi", "shamir", "shannon", "shaw", "shirley", "shockley",
    "sinoussi", "snyder", "spence", "stonebraker", "sutherland", "swanson", "swartz", "swirles", "taussig",
    "tesla", "tharp", "thompson", "torvalds", "turing", "varahamihira", "villani", "visvesvaraya", "volhard",
    "wescoff", "wiles", "williams", "wilson", "wing", "wozniak", "wright", "wu", "yalow", "yonath", "zhukovsky",
]

def _below(n: int) -> int:
    """A random int in [0, n) from the OS's CSPRNG (what secrets does, without importing random and hashlib)."""
    return int.from_bytes(os.urandom(8), "big") % n


_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | {"_", ".", "-"}


class _NamePattern:
    """docker's container name rule ^[a-zA-Z0-9][a-zA-Z0-9_.-]+$ as re.match reads it (`$` lets one final
    newline pass), without importing re: re with enum is ~5 ms of `pyctr run`'s start-up."""

    pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$"

    def match(self, text: str) -> bool:
        body = text[:-1] if text.endswith("\n") else text
        return len(body) >= 2 and body[0] in _NAME_FIRST and all(c in _NAME_REST for c in body[1:])


NAME_RE = _NamePattern()


def random_name(retry: int = 0) -> str:
    """moby's GetRandomName: `adjective_surname`, never boring_wozniak; a digit appended on retries."""
    while True:
        name = f"{LEFT[_below(len(LEFT))]}_{RIGHT[_below(len(RIGHT))]}"
        if name != "boring_wozniak":
            break
    if retry:
        name += str(_below(10))
    return name


def new_id() -> str:
    """A 64-hex container id whose short form is not all digits (docker's stringid.GenerateRandomID)."""
    while True:
        cid = os.urandom(32).hex()
        if not cid[:12].isdigit():
            return cid


def short(cid: str) -> str:
    return cid[:12]
