"""Reserved field names, identical to Data-Juicer's so exported data stays interchangeable."""

DEFAULT_PREFIX = "__dj__"


class Fields:
    stats = "__dj__stats__"
    meta = "__dj__meta__"
    context = "__dj__context__"
    suffix = "__dj__suffix__"
    source_file = "__dj__source_file__"


class HashKeys:
    hash = "__dj__hash"
    minhash = "__dj__minhash"
    simhash = "__dj__simhash"
    imagehash = "__dj__imagehash"


class InterVars:
    """Names of intermediates shared between OPs (the unit of text-level fusion)."""

    lines = "__dj__lines"
    words = "__dj__words"
    refined_words = "__dj__refined_words"
    loaded_images = "__dj__loaded_images"


class SpecialTokens:
    """Markers of media positions and chunk ends in multimodal text, as Data-Juicer writes them."""

    image = "<__dj__image>"
    audio = "<__dj__audio>"
    video = "<__dj__video>"
    eoc = "<|__dj__eoc|>"
