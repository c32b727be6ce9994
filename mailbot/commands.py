"""First-line commands in staff mail: ``#note``, ``#close``, ``#reopen``, ``#assign X``,
``#wait``, ``#detailed``.

Commands are the leading lines of the reply that start with ``#``; everything after
them is the text to relay. A line that looks like a command but is not one is an
error: nothing is relayed then, because a typo in ``#note`` must never send an
internal note to a customer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KNOWN = {"note", "close", "reopen", "assign", "wait", "detailed"}
_COMMAND = re.compile(r"^#([A-Za-z_-]+)\b[ \t]*(.*)$")


@dataclass(frozen=True)
class Command:
    name: str
    argument: str = ""


@dataclass
class Parsed:
    commands: list[Command] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    text: str = ""  # what remains after the command lines

    def has(self, name: str) -> bool:
        return any(command.name == name for command in self.commands)

    def argument(self, name: str) -> str:
        return next((c.argument for c in self.commands if c.name == name), "")


def parse_commands(text: str) -> Parsed:
    parsed = Parsed()
    lines = text.replace("\r\n", "\n").split("\n")
    index = 0
    while index < len(lines) and not lines[index].strip():
        index += 1
    while index < len(lines):
        line = lines[index].strip()
        match = _COMMAND.match(line)
        if not match:
            break
        name, argument = match.group(1).lower(), match.group(2).strip()
        if name not in KNOWN:
            parsed.errors.append(f"unknown command #{name}")
        elif name == "assign" and not argument:
            parsed.errors.append("#assign needs a manager's email or name")
        elif name != "assign" and name != "note" and argument:
            parsed.errors.append(f"#{name} takes no argument (got {argument!r})")
        else:
            parsed.commands.append(Command(name, argument))
            if name == "note":
                # Everything from #note on is internal, including text on the same line.
                rest = "\n".join([argument, *lines[index + 1:]]).strip()
                parsed.text = rest
                return parsed
        index += 1
    if parsed.has("close") and parsed.has("reopen"):
        parsed.errors.append("#close and #reopen contradict each other")
    parsed.text = "\n".join(lines[index:]).strip()
    return parsed
