"""Prompting: the instruction a user would type, through the model's own chat template.

The rendered prompt is

    chat_template([user: INSTRUCTION.format(prompt)], add_generation_prompt) + prompt

so the model answers as its assistant turn and the answer starts with the prompt's
words; the continuation after them is what is judged, exactly as for the other
methods (`generate.render_prompt` with a template containing `{prompt}`).
"""

from __future__ import annotations

from loracompose.errors import LoraComposeError

INSTRUCTIONS = {
    "sentiment": "Continue this text in a clearly {value} tone: {prompt}",
    "topic": "Continue this text so that it is about {value}: {prompt}",
}


def instruction(attribute: str, value: str) -> str:
    """The user turn for a target, with `{prompt}` left to fill."""
    if attribute not in INSTRUCTIONS:
        raise LoraComposeError(f"no instruction for attribute '{attribute}'; accepted: {', '.join(INSTRUCTIONS)}")
    return INSTRUCTIONS[attribute].replace("{value}", value)


def chat_prefix(tokenizer, user_turn: str) -> str:
    """The chat template around one user turn, up to where the assistant starts answering."""
    if not getattr(tokenizer, "chat_template", None):
        raise LoraComposeError("prompting needs an instruct model with a chat template; this tokenizer has none "
                               "(a base model: compare with the module strategies and activation addition)")
    return tokenizer.apply_chat_template([{"role": "user", "content": user_turn}], tokenize=False,
                                         add_generation_prompt=True)


def instruction_template(tokenizer, attribute: str, value: str) -> str:
    """A `generate` template (a format string with `{prompt}`) that prompts for the target.

    The chat template's own braces are escaped so that only `{prompt}` is a field.
    """
    marker = "\x00PROMPT\x00"
    rendered = chat_prefix(tokenizer, instruction(attribute, value).replace("{prompt}", marker)) + marker
    return rendered.replace("{", "{{").replace("}", "}}").replace(marker, "{prompt}")


def instructed(tokenizer, attribute: str, value: str, prompt: str) -> str:
    """The full prompted input for one prompt (what `instruction_template` renders)."""
    return instruction_template(tokenizer, attribute, value).format(prompt=prompt)
