"""Recipes as Data-Juicer's repository ships them run here unchanged (only the paths come from the
command line, as a Data-Juicer user would pass them)."""

from __future__ import annotations

import json

from dj_assets.cli import process_main

# Data-Juicer's configs/demo/dedup.yaml (comments and quoting as upstream)
DJ_DEMO_DEDUP = """\
# Process config example for dataset

# global parameters
project_name: 'demo-dedup'
dataset_path: './demos/data/demo-dataset-deduplication.jsonl'  # path to your dataset directory or file
np: 4  # number of subprocess to process your dataset

open_tracer: true

export_path: './outputs/demo-dedup/demo-dedup-processed.jsonl'

# process schedule
# a list of several process operators with their arguments
process:
  - language_id_score_filter:
      lang: en
      min_score: 0.5
#  - document_deduplicator:
#      lowercase: false
#      ignore_non_character: false
  - document_minhash_deduplicator:
      tokenization: 'character'
"""

# the text part of Data-Juicer's configs/data_juicer_recipes/redpajama-wiki-refine.yaml that runs
# without downloaded models (its perplexity_filter needs a KenLM model, tokenization: true a
# sentencepiece model from the hub)
DJ_WIKI_REFINE = """\
# global parameters
project_name: 'Data-Juicer-recipes-wiki'
dataset_path: '/path/to/your/dataset'  # path to your dataset directory or file
export_path: '/path/to/your/dataset.jsonl'

np: 50  # number of subprocess to process your dataset
open_tracer: true

process:
  - clean_email_mapper:
  - clean_links_mapper:
  - fix_unicode_mapper:
  - punctuation_normalization_mapper:
  - whitespace_normalization_mapper:

  - alphanumeric_filter:
      tokenization: false
      min_ratio: 0.6  # <3sigma (0.735)
      max_ratio: 0.884  # 3sigma
  - average_line_length_filter:  # for code
      max_len: 192  # 3sigma
  - character_repetition_filter:
      rep_len: 10
      max_ratio: 0.4  # >3sigma (0.197)
  - language_id_score_filter:
      min_score: 0.689  # 3sigma
  - maximum_line_length_filter:  # for code
      max_len: 1630  # 3sigma tbd
  - special_characters_filter:
      max_ratio: 0.5  # >3sigma (0.34)
  - text_length_filter:
      max_len: 18221 # 3sigma

  - document_simhash_deduplicator:
      tokenization: space
      window_size: 6
      lowercase: true
      ignore_pattern: '\\p{P}'
      num_blocks: 6
      hamming_distance: 4
"""

ENGLISH = [
    "Today is Sunday and it's a happy day!",
    "Today is Sunday and it's a happy day!",  # exact duplicate: removed by minhash (jaccard 1)
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Der schnelle braune Fuchs springt über den faulen Hund am Flussufer.",
    "I love reading books about history, especially the ancient world.",
]


def _run(tmp_path, recipe_text: str, texts: list[str]) -> tuple[int, list[str], dict]:
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(recipe_text)
    out = tmp_path / "out" / "res.jsonl"
    rc = process_main(["--config", str(recipe), "--executor", "local", "--dataset_path", str(data),
                       "--export_path", str(out), "--np", "1", "--no-progress"])
    kept = [json.loads(line)["text"] for line in out.read_text().splitlines()] if rc == 0 else []
    report = json.loads((out.parent / "run_report.json").read_text()) if rc == 0 else {}
    return rc, kept, report


def test_dj_demo_dedup_recipe_runs_unchanged(tmp_path):
    rc, kept, _ = _run(tmp_path, DJ_DEMO_DEDUP, ENGLISH)
    assert rc == 0
    assert kept == [ENGLISH[0], ENGLISH[2], ENGLISH[4]]
    # open_tracer: the removed duplicate and the non-English row are traced
    traces = {p.name for p in (tmp_path / "out" / "trace").iterdir()}
    assert any("document_minhash_deduplicator" in n for n in traces)
    assert any("language_id_score_filter" in n for n in traces)


def test_dj_wiki_refine_recipe_runs_unchanged(tmp_path):
    texts = ["Contact me at someone@example.com or see https://example.com/page for more. " * 3,
             "A plain encyclopedic sentence about the history of the region and its people. " * 2,
             "A plain encyclopedic sentence about the history of the region and its people. " * 2 + "!",
             "x" * 3000]
    rc, kept, report = _run(tmp_path, DJ_WIKI_REFINE, texts)
    assert rc == 0
    assert report["rows_in"] == 4
    # mappers cleaned the first text; the near duplicate (one added '!') and the repetitive row went
    assert len(kept) == 2 and "@" not in kept[0] and "https://" not in kept[0]
    assert kept[1] == texts[1].strip()
