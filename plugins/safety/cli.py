"""``toyd safety``: judge texts from the command line, the tool a maker tunes the filter with."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import sys
import textwrap
from pathlib import Path

from toyd import CliCommand
from toyd.config import parse_yaml
from toyd.errors import ConfigError
from toyd.schema import Where, build

from .settings import BUILTIN_CATEGORIES, SafetySettings

DESCRIPTION = textwrap.dedent(
    """\
    Judge TEXT (or, without it, every line of standard input) with the safety filter
    and print one JSON verdict per line:

      {"text": ..., "safe": true|false, "category": ..., "action": ..., "score": ...,
       "severity": ..., "alert": ..., "match": ..., "redacted": [...], "replacement": ...,
       "layer": ..., ["judge": {...}], ["context": {...}]}

    "text" is what would be passed on (personal information replaced by [phone],
    [email], [address], [school], [surname], [password]); "score" is the classifier's
    probability that the text is unsafe (null without the classifier); "match" is the
    normalised words that triggered a lexicon category; "layer" says which layer
    decided (lexicon, classifier, judge, context); "replacement" is what the toy would
    say instead. Categories: """
    + ", ".join(BUILTIN_CATEGORIES)
    + """.

    "toyd safety train" rebuilds the classifier's weights from the corpus in
    plugins/safety/data/ and prints its figures on the training and held-out lines."""
)

EPILOG = textwrap.dedent(
    """\
    examples:
      toyd safety "I killed it at football"               judge one text (the child said it)
      toyd safety --speaker toy "Where do you live?"      judge a sentence of the toy's reply
      toyd safety -c /etc/toyd/cloud.yaml < phrases.txt   one verdict per line, with your config
      toyd safety --eval my_set.yaml                      precision/recall over a labelled set
      toyd safety --conversation < chat.txt               lines are one session: context counts
      toyd safety train                                   rebuild the classifier from the corpus

    tuning the filter (in the config's safety: section, then check again with -c):
      1. A harmless phrase is flagged: add it to categories.<name>.benign
         ("kill the lights"; prefix "re:" for a regular expression).
      2. Something unsafe passes: add words to categories.<name>.words ("stab*" = any
         ending; repeated letters, spacing, "f.u.c.k", leetspeak and look-alike letters
         are undone automatically) and set categories.<name>.severity.
      3. Change what happens: categories.<name>.action: allow | redirect | block
         (block also alerts a parent; self_harm and abuse always alert and cannot be allowed).
      4. Change what the toy says instead: categories.<name>.lines, toy_lines.
      5. Many words: keep them in your own lexicon file and list it in word_lists.
      6. Keep a labelled set (format: plugins/safety/evaluate.py) and run --eval after
         each change, so a fix for one phrase does not break ten others.
    Reference: plugins/safety/README.md and docs/safety.md.
    """
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``toyd safety``."""
    parser.epilog = EPILOG
    parser.add_argument(
        "text", nargs="*", metavar="TEXT", help="text to judge (default: read lines from stdin)"
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="use the safety: section of this config file (default: built-in defaults)",
    )
    parser.add_argument(
        "--speaker",
        choices=("child", "toy"),
        default="child",
        help="who says the text: the child (before the LLM) or the toy (a reply sentence)",
    )
    parser.add_argument(
        "--eval",
        metavar="FILE",
        help="score a labelled set and print precision/recall per "
        "category and the texts judged wrongly",
    )
    parser.add_argument(
        "--conversation",
        action="store_true",
        help="treat the lines as one session, so the conversation context is scored too",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="with 'train': where to write the weights (default: the plugin's data/head.npz)",
    )


def load_settings(path: str) -> tuple[SafetySettings, Path]:
    """The safety section of a config file, validated with file and line in errors."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file: {exc}", source=path) from None
    parsed = parse_yaml(text, path)
    data = parsed.data.get("safety") if isinstance(parsed.data, dict) else None
    return build(SafetySettings, data, where=Where(path, parsed.line), path="safety"), file.parent


def run(args: argparse.Namespace) -> int:
    """Print one verdict per text, or an evaluation report."""
    try:
        return _run(args)
    except BrokenPipeError:
        # the reader went away (`toyd safety ... | head`): not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the final flush at exit
        return 0


def _run(args: argparse.Namespace) -> int:
    from .layers import SafetyFilter

    settings, base = load_settings(args.config) if args.config else (SafetySettings(), Path.cwd())
    if args.text == ["train"]:
        # many small matrix products: BLAS threads only fight each other on a busy machine
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        return _train(settings, base, args.out)
    safety = SafetyFilter.build(settings, base)
    if args.eval:
        from .evaluate import evaluate, load

        report = evaluate(safety, load(args.eval))
        print(report.table())
        for sample, got in report.mistakes:
            print(
                f"wrong: {sample.speaker} {sample.text!r}: expected {sample.label}, got {got or 'benign'}"
            )
        return 0
    if args.text:
        lines = [" ".join(args.text)]
    else:
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
        lines = (line.rstrip("\r\n") for line in stdin)
    session = "cli" if args.conversation else None
    for line in lines:
        if line.strip():
            decision = safety.check(line, args.speaker, session=session)
            print(json.dumps(decision.as_dict(), ensure_ascii=False), flush=True)
    return 0


def _train(settings: SafetySettings, base: Path, out: str | None) -> int:
    """Rebuild the head from the corpus, then print its figures on both splits."""
    from .classifier import HEAD, Embedder
    from .corpus import heldout_lines
    from .engine import SafetyEngine
    from .evaluate import evaluate, from_lines
    from .layers import SafetyFilter, load_classifier
    from .train import train

    target = Path(out) if out else HEAD
    cfg = settings.classifier
    print(f"embedding the corpus and training (this takes a few minutes) -> {target}", flush=True)
    _, lines = train(target, Embedder(cfg.model_path, cfg.threads))
    settings = dataclasses.replace(
        settings, classifier=dataclasses.replace(cfg, enabled="on", head_path=str(target.resolve()))
    )
    safety = SafetyFilter(
        SafetyEngine.build(settings, base), load_classifier(settings, base), settings
    )
    for name, split in (("training lines", lines), ("held-out lines", heldout_lines())):
        print(f"\n{name} ({len(split)}):")
        print(evaluate(safety, from_lines(split)).table())
    return 0


COMMAND = CliCommand(
    "safety",
    "judge texts with the child-safety filter (one JSON verdict per line)",
    add_arguments=add_arguments,
    run=run,
    description=DESCRIPTION,
)
