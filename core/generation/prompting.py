"""Prompt rendering shared by every backend: chat messages, chat template, token ids.

:class:`Prompter` holds what decides how a prompt becomes text: the tokenizer (and its chat template),
whether the template is used, and the default system message. The torch and llama.cpp backends render
and tokenise with it, so both see token-identical prompts; the remote backend sends its chat messages.
:class:`PromptingMixin` gives a generator that has a ``prompter`` the public ``build_prompt`` /
``encode`` methods.
"""

from __future__ import annotations

from typing import Any

from core.generation.types import PromptLike


class Prompter:
    """Renders prompts for one tokenizer.

    Args:
        tokenizer: The Hugging Face tokenizer of the model.
        system_prompt: System message added to chat prompts that have none.
        use_chat_template: Wrap string prompts in the tokenizer's chat template; when ``False`` (or the
            tokenizer has no template) strings are used verbatim.
    """

    def __init__(
        self, tokenizer: Any, system_prompt: str | None = None, use_chat_template: bool = True
    ) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.use_chat_template = use_chat_template and getattr(tokenizer, "chat_template", None) is not None

    def messages(self, prompt: PromptLike, system: str | None = None) -> list[dict[str, str]]:
        """The chat messages of a prompt, with the system message first.

        Args:
            prompt: The user message, or the whole conversation (``{"role", "content"}`` dicts).
            system: System message; overrides ``system_prompt``. Ignored when the messages already
                start with a system message.

        Raises:
            ValueError: if a message list is empty or a message lacks ``role`` or ``content``.
        """
        system = system if system is not None else self.system_prompt
        if isinstance(prompt, str):
            messages = [{"role": "user", "content": prompt}]
        else:
            messages = [dict(m) for m in prompt]
            if not messages or any("role" not in m or "content" not in m for m in messages):
                raise ValueError("Messages must be a non-empty list of {'role': ..., 'content': ...} dicts.")
        if system is not None and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": system})
        return messages

    def build_prompt(self, prompt: PromptLike, system: str | None = None) -> str:
        """Render a prompt (a user message string, or a list of ``{"role", "content"}`` messages).

        Args:
            prompt: The user message, or the whole conversation.
            system: System message; overrides ``system_prompt``. Ignored when the messages already
                start with a system message.

        Returns:
            The prompt text, ending with the assistant turn's opening when a chat template is used.
        """
        if isinstance(prompt, str) and not self.use_chat_template:
            system = system if system is not None else self.system_prompt
            return prompt if system is None else f"{system}\n\n{prompt}"
        messages = self.messages(prompt, system)
        if not self.use_chat_template:
            raise ValueError("This tokenizer has no chat template (or it is disabled): pass a string prompt.")
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def encode(self, prompt: PromptLike, system: str | None = None) -> list[int]:
        """Token ids of the rendered prompt."""
        text = self.build_prompt(prompt, system)
        # A chat template writes its own special tokens (e.g. BOS) into the text; don't add them twice.
        ids = self.tokenizer(text, add_special_tokens=not self.use_chat_template)["input_ids"]
        if not ids:
            raise ValueError("The prompt is empty after tokenisation.")
        return list(ids)


class PromptingMixin:
    """``build_prompt``, ``encode`` and the prompt settings of a generator with a :class:`Prompter`."""

    prompter: Prompter

    @property
    def tokenizer(self) -> Any:
        """The Hugging Face tokenizer that renders prompts and decodes output."""
        return self.prompter.tokenizer

    @property
    def system_prompt(self) -> str | None:
        """System message added to chat prompts that have none."""
        return self.prompter.system_prompt

    @property
    def use_chat_template(self) -> bool:
        """Whether string prompts are wrapped in the tokenizer's chat template."""
        return self.prompter.use_chat_template

    def build_prompt(self, prompt: PromptLike, system: str | None = None) -> str:
        """Render a prompt as text (see :meth:`Prompter.build_prompt`)."""
        return self.prompter.build_prompt(prompt, system)

    def encode(self, prompt: PromptLike, system: str | None = None) -> list[int]:
        """Token ids of the rendered prompt (see :meth:`Prompter.encode`)."""
        return self.prompter.encode(prompt, system)


__all__ = ["Prompter", "PromptingMixin"]
