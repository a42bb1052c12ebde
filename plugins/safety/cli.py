"""``toyd safety``: judge texts from the command line, the tool a maker tunes the filter with."""

from __future__ import annotations

import argparse
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
    Judge TEXT (or, without it, every line of standard input) with the local safety
    filter and print one JSON verdict per line:

      {"text": ..., "safe": true|false, "category": ..., "action": ..., "severity": ...,
       "alert": ..., "match": ..., "redacted": [...], "replacement": ...}

    "text" is what would be passed on (personal information replaced by [phone],
    [email], [address], [school], [surname], [password]); "match" is the normalised
    words that triggered the category; "replacement" is what the toy would say instead.
    Categories: """ + ", ".join(BUILTIN_CATEGORIES) + "."
)

EPILOG = textwrap.dedent(
    """\
    examples:
      toyd safety "I killed it at football"               judge one text (the child said it)
      toyd safety --speaker toy "Where do you live?"      judge a sentence of the toy's reply
      toyd safety -c /etc/toyd/cloud.yaml < phrases.txt   one verdict per line, with your config
      toyd safety --eval my_set.yaml                      precision/recall over a labelled set

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
    parser.add_argument("text", nargs="*", metavar="TEXT", help="text to judge (default: read lines from stdin)")
    parser.add_argument("-c", "--config", metavar="FILE", help="use the safety: section of this config file "
                                                                "(default: built-in defaults)")
    parser.add_argument("--speaker", choices=("child", "toy"), default="child",
                        help="who says the text: the child (before the LLM) or the toy (a reply sentence)")
    parser.add_argument("--eval", metavar="FILE", help="score a labelled set and print precision/recall per "
                                                       "category and the texts judged wrongly")


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
    from .engine import SafetyEngine

    settings, base = load_settings(args.config) if args.config else (SafetySettings(), Path.cwd())
    engine = SafetyEngine.build(settings, base)
    if args.eval:
        from .evaluate import evaluate, load

        report = evaluate(engine, load(args.eval))
        print(report.table())
        for sample, got in report.mistakes:
            print(f"wrong: {sample.speaker} {sample.text!r}: expected {sample.label}, got {got or 'benign'}")
        return 0
    if args.text:
        lines = [" ".join(args.text)]
    else:
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
        lines = (line.rstrip("\r\n") for line in stdin)
    for line in lines:
        if line.strip():
            print(json.dumps(engine.check(line, args.speaker).as_dict(), ensure_ascii=False), flush=True)
    return 0


COMMAND = CliCommand("safety", "judge texts with the child-safety filter (one JSON verdict per line)",
                     add_arguments=add_arguments, run=run, description=DESCRIPTION)
