"""The OFFLINE RESPONDER: a few rule-based answers so the demo talks on a fresh machine.

This is not a language model. It matches simple patterns (greetings, names, stories
about X, jokes, animals, feelings, goodbyes) and answers with fixed, child-safe lines,
so a maker can hear the whole chain work before configuring a real model endpoint.
"""

from __future__ import annotations

import random
import re

from .settings import Persona

ANIMALS = {
    "dog": "Dogs are loyal friends. They wag their tails when they are happy, and they can smell things far away.",
    "cat": "Cats are soft and curious. They purr when they feel cozy, and they love warm sunny spots.",
    "lion": "Lions are big cats that live in Africa. A lion's roar can be heard from very far away.",
    "elephant": "Elephants are the biggest animals on land. They use their long trunks like a hand and a nose at once.",
    "dinosaur": "Dinosaurs lived a very, very long time ago. Some were as tall as a house, and some were as small as a chicken.",
    "dragon": "Dragons live in stories and fairy tales. Some breathe fire, and some are gentle and love to fly.",
    "horse": "Horses can sleep standing up. They love apples and running fast in big green fields.",
    "rabbit": "Rabbits have long ears and strong back legs. They hop, and they love munching on crunchy carrots.",
    "fish": "Fish live in water and breathe through gills. Some fish glow in the dark deep in the sea.",
    "bird": "Birds have feathers and most of them can fly. Some birds sing beautiful songs in the morning.",
    "penguin": "Penguins are birds that cannot fly, but they are amazing swimmers. They waddle on the ice.",
    "bear": "Bears are big and fluffy. Some bears sleep all winter long in a cozy cave.",
    "monkey": "Monkeys are clever and playful. They swing from tree to tree using their hands and tails.",
    "shark": "Sharks have lived in the sea for a very long time. They grow new teeth all their lives.",
    "butterfly": "Butterflies start as tiny caterpillars. Then they make a cocoon and come out with colorful wings.",
}

JOKES = (
    "Why did the teddy bear say no to dessert? Because it was already stuffed!",
    "What do you call a sleeping dinosaur? A dino snore!",
    "Why do fish live in salt water? Because pepper makes them sneeze!",
    "What did one plate say to the other plate? Lunch is on me!",
)

STORY = (
    "Once upon a time, there was a little {thing} who lived at the edge of a sunny forest. "
    "Every morning, the {thing} went looking for a new friend. "
    "One day, the {thing} met a tiny snail who was lost, and helped it find the way home. "
    "From then on, they had picnics together every week. The end! Shall I tell you another one?"
)

_WORD = re.compile(r"[a-z']+")


class OfflineResponder:
    """Answers from fixed rules; ``reply`` returns the whole answer text."""

    label = "offline responder (rule-based, not a language model)"

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)

    def reply(self, text: str, persona: Persona) -> str:
        """A short, safe, voice-friendly answer to ``text`` in the persona's name."""
        lowered = text.lower()
        words = _WORD.findall(lowered)
        story = re.search(
            r"\bstory (?:about|of|with) (?:a |an |the )?([a-z' ]{2,40}?)(?:[.!?,]|$| please)",
            lowered,
        )
        if story:
            return STORY.format(thing=story.group(1).strip())
        if "story" in words:
            return STORY.format(thing="rabbit")
        if "joke" in words or "funny" in words:
            return self._random.choice(JOKES)
        if "name" in words and ("your" in words or "you" in words):
            return f"My name is {persona.name}! What is your favorite animal?"
        for word in words:
            animal = ANIMALS.get(word) or ANIMALS.get(word.rstrip("s"))
            if animal:
                return animal + " Do you like them too?"
        if {"bye", "goodbye", "goodnight", "night"} & set(words):
            return "Bye bye! It was so much fun talking with you. See you soon!"
        if "how are you" in lowered:
            return "I am feeling super happy today, thank you for asking! How are you?"
        if {"hello", "hi", "hey", "morning"} & set(words):
            return f"Hello there! I am {persona.name}. Do you want to hear a story or a joke?"
        if {"sad", "scared", "lonely", "afraid"} & set(words):
            return (
                "I am sorry you feel that way. A big hug from me! "
                "It helps to tell a grown-up you trust how you feel."
            )
        if not words:
            return "I did not quite hear you. Can you say that again?"
        return "That is a great question! I am not sure, but we can find out together. Do you want to hear a story?"
